"""What Tamiyo remembers about one run between epoch boundaries.

Everything a decision depends on lives here and round-trips through
`TamiyoControllerState` (see convert.py), so a controller restored from a
checkpoint decides exactly as one that never stopped.

Failures (culls and rollbacks) are remembered through the embargo they put on their
slot: a slot failed at epoch `embargo_until - embargo_epochs`. Conservative mode
reads the run's recent failures from there rather than from a second record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from esper.leyline.v1 import kernel_pb2, lifecycle_pb2

SeedStage = lifecycle_pb2.SeedStage


@dataclass
class Adaptation:
    """One seed's adaptation from its germination to its outcome."""

    seed_id: str
    germination_command_id: str
    kernel_id: str
    blueprint_id: str
    germination_epoch: int
    pre_metric: float
    selected_for_tags: tuple[str, ...]
    kernel_report: kernel_pb2.UrabraskValidationReport
    last_stage: SeedStage
    stage_entry_epoch: int
    eval_gain: float = 0.0

    def observe_stage(self, stage: SeedStage, epoch: int) -> None:
        """Record the stage seen at `epoch`; a new stage starts counting epochs from there."""
        if stage != self.last_stage:
            self.last_stage = stage
            self.stage_entry_epoch = epoch

    def epochs_in_stage(self, epoch: int) -> int:
        """Epochs spent in the current stage, counting `epoch` (>= 1 once observed)."""
        return max(0, epoch - self.stage_entry_epoch + 1)

    def epochs_active(self, epoch: int) -> int:
        return max(0, epoch - self.germination_epoch)


@dataclass(frozen=True)
class GrowthStep:
    """One fossilized adaptation: what it added to the model and what it bought."""

    seed_id: str
    growth_kind: int
    parameter_count: int
    score_gain: float
    epoch: int


@dataclass
class RunState:
    """Tamiyo's memory of one run.

    Scores are the run's validation metric oriented so that higher is better
    (esper.tamiyo.issued.Boundary). `best_val_score` only moves when beaten by more
    than the configured min_delta, so a slow creep still counts as a plateau until it
    adds up. `last_val_score` and `metric_direction` are for status only and never
    drive a decision.
    """

    run_id: str
    best_val_score: float = 0.0
    epochs_since_improvement: int = 0
    last_epoch: int = 0
    commands_issued: int = 0
    conservative_mode: bool = False
    embargo_until: dict[str, int] = field(default_factory=dict)
    adaptations: dict[str, Adaptation] = field(default_factory=dict)
    blueprint_scores: dict[str, int] = field(default_factory=dict)
    last_val_score: float = 0.0
    metric_direction: int = lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
    stepped: bool = False
    growth_steps: list[GrowthStep] = field(default_factory=list)

    def observe_score(self, score: float, min_delta: float) -> bool:
        """Track the best score; True when this epoch improved on it by more than min_delta."""
        self.last_val_score = score
        if not self.stepped:
            self.best_val_score = score
            self.epochs_since_improvement = 0
            return True
        if score > self.best_val_score + min_delta:
            self.best_val_score = score
            self.epochs_since_improvement = 0
            return True
        self.epochs_since_improvement += 1
        return False

    def is_embargoed(self, seed_id: str, epoch: int) -> bool:
        return epoch < self.embargo_until.get(seed_id, 0)

    def record_failure(self, seed_id: str, epoch: int, embargo_epochs: int) -> None:
        """A slot failed at `epoch`: embargo it (which also records when it failed)."""
        self.embargo_until[seed_id] = epoch + embargo_epochs

    def failure_epochs(self, embargo_epochs: int) -> dict[str, int]:
        """Epoch of each slot's last failure."""
        return {seed: max(0, until - embargo_epochs) for seed, until in self.embargo_until.items()}

    def score_blueprint(self, blueprint_id: str, delta: int) -> None:
        if blueprint_id:
            self.blueprint_scores[blueprint_id] = self.blueprint_scores.get(blueprint_id, 0) + delta
