"""What a policy sees at an epoch boundary, and what it answers.

`Observation` is a validated StepRequest in the policy's terms: one `SeedView` per
seed in layout order (the packet's features plus the full telemetry when the caller
sent it). `StepOutcome` collects the answer as the policy builds it; every command
it holds comes with a decision carrying the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from esper.leyline.v1 import control_pb2, lifecycle_pb2, telemetry_pb2
from esper.state import SeedFeatures
from esper.tamiyo.issued import Boundary, CommandType

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
class Observation:
    """A validated StepRequest. `model_parameters` and `final_epoch` are 0 when unknown,
    `device_kind` "" when the caller did not say."""

    boundary: Boundary
    training_loss: float
    validation_loss: float
    seeds: tuple[SeedView, ...]
    model_parameters: int
    final_epoch: int = 0
    device_kind: str = ""

    @property
    def epoch(self) -> int:
        return self.boundary.epoch

    @property
    def score(self) -> float:
        """The validation metric, higher is better (see Boundary)."""
        return self.boundary.score

    def shown(self, score: float) -> str:
        return self.boundary.shown(score)

    @property
    def finite(self) -> bool:
        """Losses and the metric are all finite; otherwise the run needs a rollback."""
        values = (self.training_loss, self.validation_loss, self.boundary.score)
        return all(math.isfinite(value) for value in values)


@dataclass
class StepOutcome:
    """The answer being built: commands in order, decisions, field reports, run-level signal."""

    epoch: int
    commands: list[control_pb2.AdaptationCommand] = field(default_factory=list)
    decisions: list[control_pb2.AdaptationDecision] = field(default_factory=list)
    field_reports: list[control_pb2.FieldReport] = field(default_factory=list)
    finished_seeds: set[str] = field(default_factory=set)
    emergency_rollback: bool = False
    optimizer_rebuild: bool = False
    signal_reasons: list[str] = field(default_factory=list)

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
