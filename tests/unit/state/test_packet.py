import random

import pytest

from esper.leyline.v1 import lifecycle_pb2, telemetry_pb2
from esper.state import layout_hash, pack_system_state, unpack_seed_features
from esper.state.samples import sample_seed_telemetry, sample_state_packet

PACKET_BUDGET_BYTES = 280


def test_sixteen_seed_packet_fits_the_byte_budget() -> None:
    # Worst realistic case: every value at the top of its varint width.
    seeds = [
        telemetry_pb2.SeedTelemetry(
            seed_id=f"blocks.{i}.mlp",
            stage=lifecycle_pb2.SEED_STAGE_ROLLED_BACK,
            alpha=1.0,
            chunk_variance=50.0,
            dead_node_ratio=1.0,
            avg_correlation=1.0,
            epochs_since_graft=127,
            is_ready_for_transition=True,
        )
        for i in range(16)
    ]
    packet = pack_system_state(
        run_id="run-5f0c2a9e",
        epoch=9999,
        global_step=2**34,
        training_loss=1.0,
        validation_loss=1.0,
        validation_accuracy=1.0,
        epoch_ms=60_000,
        seeds=seeds,
    )
    assert len(packet.SerializeToString()) < PACKET_BUDGET_BYTES


def test_pack_then_unpack_recovers_features_within_quantization() -> None:
    seeds = sample_seed_telemetry(16, random.Random(3))
    packet = sample_state_packet(16, seed=3)
    decoded = telemetry_pb2.SystemStatePacket.FromString(packet.SerializeToString())
    features = unpack_seed_features(decoded, [s.seed_id for s in seeds])
    for seed, feature in zip(seeds, features, strict=True):
        assert feature.seed_id == seed.seed_id
        assert feature.stage == seed.stage
        assert feature.alpha == pytest.approx(seed.alpha, abs=5e-5)
        assert feature.chunk_variance == pytest.approx(seed.chunk_variance, abs=5e-5)
        assert feature.dead_node_ratio == pytest.approx(seed.dead_node_ratio, abs=5e-5)
        assert feature.avg_correlation == pytest.approx(seed.avg_correlation, abs=5e-5)
        assert feature.epochs_since_graft == seed.epochs_since_graft
        assert feature.is_ready_for_transition == seed.is_ready_for_transition


def test_fractions_are_clamped_to_their_range() -> None:
    seed = telemetry_pb2.SeedTelemetry(seed_id="a", alpha=1.7, dead_node_ratio=-0.2, chunk_variance=1e9)
    packet = pack_system_state(
        run_id="r",
        epoch=0,
        global_step=0,
        training_loss=0,
        validation_loss=0,
        validation_accuracy=0,
        epoch_ms=0,
        seeds=[seed],
    )
    assert list(packet.seed_alpha_bp) == [10_000]
    assert list(packet.seed_dead_bp) == [0]
    assert list(packet.seed_variance_bp) == [1_000_000]


def test_unpack_refuses_a_different_layout() -> None:
    packet = sample_state_packet(4)
    with pytest.raises(ValueError, match="layout"):
        unpack_seed_features(packet, ["x", "y", "z", "w"])


def test_layout_hash_depends_on_order() -> None:
    assert layout_hash(["a", "b"]) != layout_hash(["b", "a"])
