"""Pack per-seed telemetry into a `SystemStatePacket` and back.

The packet is a structure of arrays aligned with the run's seed layout, and its
fractions travel as basis points, so sixteen seeds fit in under 280 bytes
(the budget in docs/benchmarks.md). Quantization loses at most half a basis point (5e-5) per value.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from esper.leyline.v1 import lifecycle_pb2, telemetry_pb2

SCHEMA_VERSION = 1
BASIS_POINTS = 10_000
# chunk_variance is unbounded; cap its scaled value so one outlier cannot bloat the packet.
VARIANCE_CAP_BP = 1_000_000
READY_MASK_SEEDS = 32


@dataclass(frozen=True)
class SeedFeatures:
    """One seed's features as a policy reads them back from a packet."""

    seed_id: str
    stage: lifecycle_pb2.SeedStage
    alpha: float
    chunk_variance: float
    dead_node_ratio: float
    avg_correlation: float
    epochs_since_graft: int
    is_ready_for_transition: bool


def layout_hash(seed_ids: Sequence[str]) -> int:
    """CRC32 of the seed ids in layout order: identifies which layout the arrays follow."""
    return zlib.crc32("\x1f".join(seed_ids).encode("utf-8"))


def _bp(value: float, cap: int = BASIS_POINTS) -> int:
    return max(0, min(cap, round(value * BASIS_POINTS)))


def pack_system_state(
    *,
    run_id: str,
    epoch: int,
    global_step: int,
    training_loss: float,
    validation_loss: float,
    validation_accuracy: float,
    epoch_ms: int,
    seeds: Sequence[telemetry_pb2.SeedTelemetry],
    validation_metric: float = 0.0,
    metric_direction: lifecycle_pb2.MetricDirection = lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED,
) -> telemetry_pb2.SystemStatePacket:
    """Build the packet from full telemetry, in the order of `seeds` (the layout order).

    A run judged by accuracy leaves `metric_direction` UNSPECIFIED; any other metric
    travels as `validation_metric` with its direction.
    """
    packet = telemetry_pb2.SystemStatePacket(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        epoch=epoch,
        global_step=global_step,
        training_loss=training_loss,
        validation_loss=validation_loss,
        validation_accuracy=validation_accuracy,
        layout_hash=layout_hash([seed.seed_id for seed in seeds]),
        epoch_ms=max(0, epoch_ms),
        validation_metric=validation_metric,
        metric_direction=metric_direction,
    )
    packet.packet_time.GetCurrentTime()
    ready_mask = 0
    for index, seed in enumerate(seeds):
        packet.seed_stages.append(seed.stage)
        packet.seed_alpha_bp.append(_bp(seed.alpha))
        packet.seed_variance_bp.append(_bp(seed.chunk_variance, VARIANCE_CAP_BP))
        packet.seed_dead_bp.append(_bp(seed.dead_node_ratio))
        packet.seed_correlation_bp.append(_bp(seed.avg_correlation))
        packet.seed_epochs_since_graft.append(seed.epochs_since_graft)
        if seed.is_ready_for_transition and index < READY_MASK_SEEDS:
            ready_mask |= 1 << index
    packet.ready_mask = ready_mask
    return packet


def unpack_seed_features(packet: telemetry_pb2.SystemStatePacket, seed_ids: Sequence[str]) -> list[SeedFeatures]:
    """Read the per-seed arrays back; `seed_ids` is the layout the caller holds.

    Raises ValueError when the layout does not match the packet's hash or the
    arrays disagree in length, since misaligned features would point the
    policy at the wrong seed.
    """
    if layout_hash(seed_ids) != packet.layout_hash:
        raise ValueError("seed layout does not match the packet's layout_hash")
    arrays = (
        packet.seed_stages,
        packet.seed_alpha_bp,
        packet.seed_variance_bp,
        packet.seed_dead_bp,
        packet.seed_correlation_bp,
        packet.seed_epochs_since_graft,
    )
    if any(len(array) != len(seed_ids) for array in arrays):
        raise ValueError(f"packet arrays do not all hold {len(seed_ids)} seeds")
    return [
        SeedFeatures(
            seed_id=seed_id,
            stage=packet.seed_stages[i],
            alpha=packet.seed_alpha_bp[i] / BASIS_POINTS,
            chunk_variance=packet.seed_variance_bp[i] / BASIS_POINTS,
            dead_node_ratio=packet.seed_dead_bp[i] / BASIS_POINTS,
            avg_correlation=packet.seed_correlation_bp[i] / BASIS_POINTS,
            epochs_since_graft=packet.seed_epochs_since_graft[i],
            is_ready_for_transition=bool(packet.ready_mask >> i & 1) if i < READY_MASK_SEEDS else False,
        )
        for i, seed_id in enumerate(seed_ids)
    ]
