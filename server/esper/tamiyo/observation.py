"""What a policy sees at an epoch boundary, and what it answers.

`Observation` is a validated StepRequest in the policy's terms: one `SeedView` per
seed in layout order (the packet's features plus the full telemetry when the caller
sent it). `StepOutcome` collects the answer as the policy builds it; every command
it holds comes with a decision carrying the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from esper.leyline.v1 import blueprint_pb2, control_pb2, lifecycle_pb2, telemetry_pb2
from esper.state import SeedFeatures
from esper.state.packet import BASIS_POINTS, READY_MASK_SEEDS
from esper.tamiyo.issued import Boundary, CommandType

if TYPE_CHECKING:
    from esper.tamiyo.context import DecisionRecord

SeedStage = lifecycle_pb2.SeedStage

# Stages between germination and an outcome: the seed occupies a concurrency slot.
ACTIVE_STAGES: frozenset[SeedStage] = frozenset(
    {
        lifecycle_pb2.SEED_STAGE_GERMINATED,
        lifecycle_pb2.SEED_STAGE_LOADING,
        lifecycle_pb2.SEED_STAGE_TRAINING,
        lifecycle_pb2.SEED_STAGE_GRAFTING,
        lifecycle_pb2.SEED_STAGE_STABILIZATION,
        lifecycle_pb2.SEED_STAGE_EVALUATING,
        lifecycle_pb2.SEED_STAGE_FINE_TUNING,
    }
)

# Advances that load, freeze or unfreeze seed parameters; other advances keep the trainable set.
_REBUILD_TARGETS: frozenset[SeedStage] = frozenset(
    {
        lifecycle_pb2.SEED_STAGE_LOADING,
        lifecycle_pb2.SEED_STAGE_STABILIZATION,
        lifecycle_pb2.SEED_STAGE_FINE_TUNING,
    }
)
_REBUILD_COMMANDS: frozenset[CommandType] = frozenset(
    {
        lifecycle_pb2.COMMAND_TYPE_CANCEL_GERMINATION,
        lifecycle_pb2.COMMAND_TYPE_FOSSILIZE,
        lifecycle_pb2.COMMAND_TYPE_CULL,
    }
)


def stage_name(stage: SeedStage) -> str:
    return lifecycle_pb2.SeedStage.Name(stage).removeprefix("SEED_STAGE_")


@dataclass(frozen=True)
class SeedView:
    """One seed at the boundary: where it sits, its packed features, its telemetry if sent."""

    descriptor: telemetry_pb2.SeedDescriptor
    features: SeedFeatures
    telemetry: telemetry_pb2.SeedTelemetry | None

    @property
    def seed_id(self) -> str:
        return self.descriptor.seed_id

    @property
    def stage(self) -> SeedStage:
        return self.features.stage

    @property
    def ready(self) -> bool:
        # The packet's ready mask covers the first 32 seeds only; telemetry covers the rest.
        telemetry_ready = self.telemetry is not None and self.telemetry.is_ready_for_transition
        return self.features.is_ready_for_transition or telemetry_ready


@dataclass(frozen=True)
class SeedLayout:
    """Where the seeds sit, as arrays in layout order: what every policy step reads of the layout."""

    seed_ids: tuple[str, ...]
    rows: dict[str, int]
    layer_index: np.ndarray  # int64
    input_kind: np.ndarray  # int64
    growth_kind: np.ndarray  # int64, GROWTH_KIND_DEPTH where unset
    width: np.ndarray  # float64: what the seed reads, without batch
    output_width: np.ndarray  # float64: what a width seed adds into (a depth seed: its input)
    layer_units: np.ndarray  # float64: units of the layer at the seed's site, 0 when unknown
    shapes: tuple[tuple[int, ...], ...]
    sites: tuple[tuple[int, tuple[int, ...], int, tuple[int, ...]], ...]  # kind, input, growth, output
    parents: dict[str, str]  # nested seed -> the fossilized seed it grew from

    @classmethod
    def of(cls, seeds: tuple[SeedView, ...]) -> SeedLayout:
        descriptors = [view.descriptor for view in seeds]
        n = len(descriptors)
        seed_ids = tuple(d.seed_id for d in descriptors)
        shapes = tuple(tuple(d.input_shape.dims) for d in descriptors)
        growth = tuple(d.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH for d in descriptors)
        outputs = tuple(
            tuple(d.output_shape.dims) if kind == blueprint_pb2.GROWTH_KIND_WIDTH else shape
            for d, kind, shape in zip(descriptors, growth, shapes, strict=True)
        )
        return cls(
            seed_ids=seed_ids,
            rows={seed_id: row for row, seed_id in enumerate(seed_ids)},
            layer_index=np.fromiter((d.layer_index for d in descriptors), dtype=np.int64, count=n),
            input_kind=np.fromiter((d.input_kind for d in descriptors), dtype=np.int64, count=n),
            growth_kind=np.asarray(growth, dtype=np.int64).reshape(n),
            width=np.fromiter((math.prod(shape) for shape in shapes), dtype=np.float64, count=n),
            output_width=np.fromiter((math.prod(shape) for shape in outputs), dtype=np.float64, count=n),
            layer_units=np.fromiter((d.layer_units for d in descriptors), dtype=np.float64, count=n),
            shapes=shapes,
            sites=tuple(
                (int(d.input_kind), shape, int(kind), output)
                for d, shape, kind, output in zip(descriptors, shapes, growth, outputs, strict=True)
            ),
            parents={d.seed_id: d.parent_seed_id for d in descriptors if d.parent_seed_id},
        )


@dataclass(frozen=True)
class PackedFeatures:
    """The packet's per-seed arrays as numpy, in layout order (read at C speed, not seed by seed).

    `ready` covers the packet's ready mask only (its first 32 seeds); telemetry says the rest.
    """

    stage: np.ndarray
    alpha: np.ndarray
    variance: np.ndarray
    dead: np.ndarray
    correlation: np.ndarray
    since_graft: np.ndarray
    ready: np.ndarray

    @classmethod
    def of(cls, packet: telemetry_pb2.SystemStatePacket) -> PackedFeatures:
        n = len(packet.seed_stages)
        bits = np.arange(min(n, READY_MASK_SEEDS))
        ready = np.zeros(n, dtype=np.bool_)
        ready[: bits.size] = (packet.ready_mask >> bits) & 1 == 1
        return cls(
            stage=np.asarray(packet.seed_stages, dtype=np.int64),
            alpha=np.asarray(packet.seed_alpha_bp, dtype=np.float64) / BASIS_POINTS,
            variance=np.asarray(packet.seed_variance_bp, dtype=np.float64) / BASIS_POINTS,
            dead=np.asarray(packet.seed_dead_bp, dtype=np.float64) / BASIS_POINTS,
            correlation=np.asarray(packet.seed_correlation_bp, dtype=np.float64) / BASIS_POINTS,
            since_graft=np.asarray(packet.seed_epochs_since_graft, dtype=np.float64),
            ready=ready,
        )


@dataclass(frozen=True)
class Observation:
    """A validated StepRequest. `model_parameters` and `final_epoch` are 0 when unknown, `host_layers`
    empty when the caller did not describe the host, `device_kind` "" when the caller did not say."""

    boundary: Boundary
    training_loss: float
    validation_loss: float
    seeds: tuple[SeedView, ...]
    model_parameters: int
    final_epoch: int = 0
    host_layers: tuple[telemetry_pb2.HostLayer, ...] = ()
    device_kind: str = ""
    # The packet's arrays and the run's layout when the caller has them (the controller does):
    # a policy over thousands of seeds then never reads them seed by seed.
    packed: PackedFeatures | None = field(default=None, compare=False, repr=False)
    known_layout: SeedLayout | None = field(default=None, compare=False, repr=False)

    @property
    def epoch(self) -> int:
        return self.boundary.epoch

    @property
    def score(self) -> float:
        """The validation metric, higher is better (see Boundary)."""
        return self.boundary.score

    def shown(self, score: float) -> str:
        return self.boundary.shown(score)

    @cached_property
    def layout(self) -> SeedLayout:
        """The seed layout as arrays: the known one, or computed once per observation."""
        return self.known_layout if self.known_layout is not None else SeedLayout.of(self.seeds)

    @cached_property
    def stages(self) -> np.ndarray:
        """Each seed's stage, in layout order (int64)."""
        if self.packed is not None:
            return self.packed.stage
        return np.fromiter((view.features.stage for view in self.seeds), dtype=np.int64, count=len(self.seeds))

    @property
    def rows(self) -> dict[str, int]:
        """Each seed's row in layout order, by seed id."""
        return self.layout.rows

    @property
    def finite(self) -> bool:
        """Losses and the metric are all finite; otherwise the run needs a rollback."""
        values = (self.training_loss, self.validation_loss, self.boundary.score)
        return all(math.isfinite(value) for value in values)


@dataclass
class StepOutcome:
    """The answer being built: commands in order, decisions, field reports, run-level signal.

    A learned policy also leaves the `record` of what it saw and chose (for its
    transition), or the `fallback_reason` when heuristic-v1 decided in its place.
    """

    epoch: int
    commands: list[control_pb2.AdaptationCommand] = field(default_factory=list)
    decisions: list[control_pb2.AdaptationDecision] = field(default_factory=list)
    field_reports: list[control_pb2.FieldReport] = field(default_factory=list)
    finished_seeds: set[str] = field(default_factory=set)
    emergency_rollback: bool = False
    optimizer_rebuild: bool = False
    signal_reasons: list[str] = field(default_factory=list)
    record: DecisionRecord | None = None
    fallback_reason: str = ""

    def act(self, command: control_pb2.AdaptationCommand) -> None:
        """Issue `command`, recording the decision with its reason."""
        self.commands.append(command)
        self.decisions.append(
            control_pb2.AdaptationDecision(
                epoch=self.epoch,
                seed_id=command.seed_id,
                command_id=command.command_id,
                command_type=command.command_type,
                reason=command.reason,
            )
        )
        if command.command_type in _REBUILD_COMMANDS or (
            command.command_type == lifecycle_pb2.COMMAND_TYPE_ADVANCE and command.target_stage in _REBUILD_TARGETS
        ):
            if not self.optimizer_rebuild:
                self.signal_reasons.append("seed parameters changed: rebuild the optimizer")
            self.optimizer_rebuild = True

    def wait(self, seed_id: str, reason: str) -> None:
        """Record a decision to do nothing now (seed_id empty for run-level decisions)."""
        self.decisions.append(control_pb2.AdaptationDecision(epoch=self.epoch, seed_id=seed_id, reason=reason))

    def request_rollback(self, reason: str) -> None:
        self.emergency_rollback = True
        self.signal_reasons.append(reason)
