"""Never worse than static: what the training loop keeps so that growth cannot wreck a run.

- `LossHistory` judges divergence against the run's recent epochs (the median of the
  last few), so a sudden jump is caught at once whatever the run's best or first loss.
- `GraftCheckpoints` holds, for every seed blending into the model, the checkpoint
  taken just before its graft began (host, optimizers, seeds, controller): the state
  to go back to when that graft turns out harmful.
- `BestState` holds the best validated deployable state (host and fossilized seeds,
  adaptations in flight blended out), which the run ends with if its final state
  validates worse.
- `RollbackRecord` is one rollback as the summary reports it.

All of it lives in memory and goes into the file checkpoint beside the training state,
so a resumed run keeps it; none of it is part of the state a rollback restores.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

DIVERGENCE = "divergence"
GRAFT = "graft"


@dataclass(frozen=True)
class RollbackRecord:
    """One rollback: at the end of `epoch`, back to the checkpoint after `to_epoch` (-1: before training)."""

    epoch: int
    kind: str
    to_epoch: int
    reason: str
    locked_seeds: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["locked_seeds"] = list(self.locked_seeds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RollbackRecord:
        return cls(
            epoch=int(data["epoch"]),
            kind=str(data["kind"]),
            to_epoch=int(data["to_epoch"]),
            reason=str(data["reason"]),
            locked_seeds=tuple(str(seed) for seed in data.get("locked_seeds", ())),
        )


class LossHistory:
    """The training and validation losses of the last `window` accepted epochs."""

    def __init__(self, window: int, factor: float, min_loss: float) -> None:
        self.window = window
        self.factor = factor
        self.min_loss = min_loss
        self.train: list[float] = []
        self.val: list[float] = []

    def judge(self, train_loss: float, val_loss: float, *, metric_held: bool = False) -> str:
        """Why this epoch diverged, or "" when it did not (no history yet: nothing to judge against).

        With `metric_held` (the validation metric is still about as good as the run's best),
        a jump in validation loss alone is overfitting, not a broken model: confident
        mistakes on a few examples grow the loss while the metric holds, and going back
        would only discard epochs.
        """
        for name, loss, recent in (("validation", val_loss, self.val), ("training", train_loss, self.train)):
            if not recent or (name == "validation" and metric_held):
                continue
            median = statistics.median(recent)
            # A floor on the reference: once losses are tiny, ordinary noise is many times them.
            limit = self.factor * max(median, self.min_loss)
            if loss > limit:
                return (
                    f"{name} loss {loss:.3f} diverged (> {limit:.3f}: {self.factor:g} x the median "
                    f"{median:.3f} of the last {len(recent)} epochs)"
                )
        return ""

    def record(self, train_loss: float, val_loss: float) -> None:
        self.train = [*self.train, train_loss][-self.window :]
        self.val = [*self.val, val_loss][-self.window :]

    def state_dict(self) -> dict[str, list[float]]:
        return {"train": list(self.train), "val": list(self.val)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train = [float(x) for x in state.get("train", [])][-self.window :]
        self.val = [float(x) for x in state.get("val", [])][-self.window :]


@dataclass
class GraftCheckpoint:
    """The checkpoint taken at the boundary after `epoch`, when the seed's graft began.

    `val_score` is what the model validated at that boundary (its metric, negated when
    lower is better): the graft had not touched it yet (alpha starts at 0).
    """

    epoch: int
    val_score: float
    state: dict[str, Any]


@dataclass
class GraftCheckpoints:
    """Seed id -> the checkpoint taken just before its graft began, while the seed blends in."""

    by_seed: dict[str, GraftCheckpoint] = field(default_factory=dict)

    def earliest(self, seed_ids: list[str] | None = None) -> tuple[str, GraftCheckpoint] | None:
        """The oldest checkpoint among `seed_ids` (default: all): it predates all their grafts."""
        chosen = [(seed, self.by_seed[seed]) for seed in (seed_ids or list(self.by_seed)) if seed in self.by_seed]
        return min(chosen, key=lambda item: item[1].epoch) if chosen else None

    def keep_only(self, seed_ids: set[str]) -> None:
        self.by_seed = {seed: kept for seed, kept in self.by_seed.items() if seed in seed_ids}

    def state_dict(self) -> dict[str, Any]:
        return {
            seed: {"epoch": kept.epoch, "val_score": kept.val_score, "state": kept.state}
            for seed, kept in self.by_seed.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.by_seed = {
            seed: GraftCheckpoint(
                int(kept["epoch"]), float(kept.get("val_score", kept.get("val_accuracy"))), kept["state"]
            )
            for seed, kept in state.items()
        }


@dataclass
class BestState:
    """The best deployable validation score of the run (higher is better), the epoch it came from and that state.

    `loss` is that state's validation loss: it breaks a tie in the score (a saturated
    validation accuracy, 100 % at several epochs), the lower loss winning.
    """

    epoch: int = -1
    score: float = -math.inf
    state: dict[str, Any] | None = None
    loss: float = math.inf

    def improves(self, score: float, loss: float) -> bool:
        """(`score`, `loss`) validates better than the best so far; on a full tie the earlier state stays."""
        return _validates_better(score, loss, self.score, self.loss)

    def beats(self, score: float, loss: float) -> bool:
        """This state validates better than (`score`, `loss`)."""
        return _validates_better(self.score, self.loss, score, loss)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "score": self.score, "loss": self.loss, "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.score = float(state.get("score", state.get("accuracy", -math.inf)))
        self.loss = float(state.get("loss", math.inf))
        self.state = state["state"]


def _validates_better(score: float, loss: float, other_score: float, other_loss: float) -> bool:
    """A higher score, or the same score at a lower validation loss."""
    return score > other_score or (score == other_score and loss < other_loss)


@dataclass(frozen=True)
class SavedState:
    """Which state a run ended with (and `esper.save_model` writes), and why; metrics in their own units."""

    epoch: int
    val_metric: float
    final_val_metric: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
