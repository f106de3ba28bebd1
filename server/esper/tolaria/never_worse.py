"""Never worse than static: the part of Tolaria's trainer that keeps growth from wrecking a run.

- A failed epoch (non-finite, or a loss far above the median of the last few epochs) goes
  back to the checkpoint taken before the earliest graft still blending in, or to the
  last good one, and is retried.
- A seed culled after its graft began takes the run back to the checkpoint taken just
  before that graft (host, optimizers, seeds, Tamiyo) when that checkpoint validated
  better than the model without the seed; the run goes on from there.
- After a graft rollback the culled seeds are locked ROLLED_BACK (seed 004, Appendix B:
  the failed seed is disabled); every other seed goes on from its state in the
  checkpoint, where it was adapting before the harmful graft began. After a divergence
  the culprit is unknown: every seed blending into the model in the restored state is
  locked; a seed only TRAINING never touched the host (its forward is the identity) and
  goes on. Either way the epochs the rollback discarded are trained again.
- The run ends with its best validated deployable state when the final one is worse.

`NeverWorseThanStatic` is a mixin of `TolariaTrainer`, which owns the attributes declared here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from esper.leyline.v1 import lifecycle_pb2
from esper.tolaria.checkpoint import snapshot
from esper.tolaria.config import RunConfig, TolariaConfig
from esper.tolaria.events import RunEventLog
from esper.tolaria.loop import EpochStats
from esper.tolaria.objective import Objective
from esper.tolaria.optimizers import OptimizerSet
from esper.tolaria.safety import (
    DIVERGENCE,
    GRAFT,
    BestState,
    GraftCheckpoint,
    GraftCheckpoints,
    LossHistory,
    RollbackRecord,
    SavedState,
)


class TrainingFailed(RuntimeError):
    """Training cannot go on (it kept diverging after rollbacks)."""


class NeverWorseThanStatic:
    """Rollbacks, graft checkpoints and the best state, over the trainer's model, seeds and controller."""

    run: RunConfig
    tolaria: TolariaConfig
    model: Any
    kasmina: Any
    events: RunEventLog
    history: Any
    optimizers: OptimizerSet
    objective: Objective
    _good: dict[str, Any] | None
    _losses: LossHistory
    _grafts: GraftCheckpoints
    _best: BestState
    _extra_epochs: int

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        raise NotImplementedError

    def _restore(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _evaluate_val(self) -> EpochStats:
        raise NotImplementedError

    # Failure and rollback

    def _failure(self, train_stats: EpochStats, val_stats: EpochStats) -> str:
        if not (train_stats.finite and val_stats.finite):
            return "non-finite loss"
        if self._grafts.earliest() is None:
            # Nothing is blending in to blame: the static twin trains the same way, and going
            # back would replay the same epoch into the same jump until the run gave up.
            return ""
        best = self.history.best_val_score
        held = math.isfinite(best) and val_stats.score >= best - self.tolaria.graft_rollback_margin
        return self._losses.judge(train_stats.loss, val_stats.loss, metric_held=held)

    def _roll_back(self, epoch: int, reason: str) -> None:
        """A failed epoch: back to before the earliest graft still blending in (or the last good state); retried."""
        failures = sum(record.kind == DIVERGENCE for record in self.history.rollback_log) + 1
        if failures > self.tolaria.max_rollbacks:
            raise TrainingFailed(f"epoch {epoch}: {reason}; gave up after {self.tolaria.max_rollbacks} rollbacks")
        earliest = self._grafts.earliest()
        if earliest is not None:
            seed_id, kept = earliest
            target, to_epoch = kept.state, kept.epoch
            where = f"the checkpoint taken before {seed_id}'s graft (after epoch {to_epoch})"
        else:
            assert self._good is not None
            target, to_epoch, where = self._good, int(self._good["epoch"]), "the last good checkpoint"
        locked = self._restore_and_lock(target, epoch, f"emergency rollback at epoch {epoch}: {reason}")
        self._record_rollback(RollbackRecord(epoch, DIVERGENCE, to_epoch, reason, tuple(locked)), where)

    def _judge_culled_grafts(self, epoch: int) -> None:
        """Seeds culled at this boundary after their graft began: go back to before the graft if that was better.

        The host learned beside the seed while it blended in; once the seed is gone, that
        learning may be worth less than the state before the graft. Both are measured on
        the validation set: the model as it is now, without the seed, and the checkpoint.
        """
        culled = [
            seed_id for seed_id in self._grafts.by_seed if self._stage(seed_id) == lifecycle_pb2.SEED_STAGE_CULLED
        ]
        if not culled:
            return
        earliest = self._grafts.earliest(culled)
        assert earliest is not None
        seed_id, kept = earliest
        for seed in culled:
            self._grafts.by_seed.pop(seed, None)
        if not self.tolaria.graft_rollback:
            return
        now = self._evaluate_val().score
        names = ", ".join(culled)
        margin = self.tolaria.graft_rollback_margin
        if now >= kept.val_score - margin:
            self.events.notice(
                f"epoch {epoch}: {names} culled after grafting; the model without it validates {self._shown(now)}, "
                f"not more than {margin:g} worse than {self._shown(kept.val_score)} before its graft (after epoch "
                f"{kept.epoch}): no rollback"
            )
            return
        reason = (
            f"{names} culled after grafting; the model without it validates {self._shown(now)}, "
            f"worse than {self._shown(kept.val_score)} before {seed_id}'s graft"
        )
        locked = self._restore_and_lock(
            kept.state, epoch, f"graft rollback at epoch {epoch}: {reason}", culprits=culled
        )
        where = f"the checkpoint taken before {seed_id}'s graft (after epoch {kept.epoch})"
        self._record_rollback(RollbackRecord(epoch, GRAFT, kept.epoch, reason, tuple(locked)), where)

    def _track_grafts(self, epoch: int, val_score: float) -> None:
        """A seed whose graft began at this boundary gets this boundary's checkpoint; finished seeds drop theirs."""
        blending = set(self.kasmina.blending_seed_ids())
        self._grafts.keep_only(blending)
        assert self._good is not None
        for seed_id in sorted(blending - set(self._grafts.by_seed)):
            if self._stage(seed_id) == lifecycle_pb2.SEED_STAGE_GRAFTING:
                self._grafts.by_seed[seed_id] = GraftCheckpoint(epoch, val_score, self._good)

    def _restore_and_lock(
        self, state: Mapping[str, Any], epoch: int, reason: str, *, culprits: list[str] | None = None
    ) -> list[str]:
        """Restore `state` and lock ROLLED_BACK the `culprits` under way in it (None: every seed blending in).

        Graft checkpoints older than `state` stay with their seeds if those still blend in:
        they predate the restored state. Returns the locked seeds.
        """
        self._restore(snapshot(dict(state)))
        older = self._grafts.by_seed
        self._grafts = GraftCheckpoints()
        if self.kasmina is None:
            return []
        blending = self.kasmina.blending_seed_ids()
        if culprits is None:
            locked = blending
        else:
            active = set(self.kasmina.active_seed_ids())
            locked = [seed_id for seed_id in culprits if seed_id in active]
        restored_epoch = int(state["epoch"])
        self._grafts.by_seed = {
            seed_id: kept
            for seed_id, kept in older.items()
            if kept.epoch < restored_epoch and seed_id in blending and seed_id not in locked
        }
        if locked:
            self.kasmina.roll_back(locked, reason=reason, epoch=epoch)
            self.optimizers.sync()
        for transition in self.kasmina.drain_transitions():
            self.events.transition(transition)
        return locked

    def _record_rollback(self, record: RollbackRecord, where: str) -> None:
        self.history.rollbacks += 1
        self.history.rollback_log.append(record)
        # Epochs after the restored checkpoint no longer count (a failed epoch is retried anyway):
        # the host gets as many kept epochs as its static twin, up to twice the configured run.
        discarded = record.epoch - record.to_epoch - (1 if record.kind == DIVERGENCE else 0)
        if self.tolaria.retrain_discarded_epochs and discarded > 0:
            self._extra_epochs = min(self._extra_epochs + discarded, self.run.epochs)
        self.events.notice(
            f"epoch {record.epoch}: {record.reason}; restored {where}"
            + (f" and locked {', '.join(record.locked_seeds)} ROLLED_BACK" if record.locked_seeds else "")
        )
        # The restored state is the new last good point: a failure next epoch must not return past it.
        self._good = snapshot(self._checkpoint_state(record.to_epoch))
        self._rebase_best(record.to_epoch)

    def _stage(self, seed_id: str) -> int:
        return int(self.model.seed(seed_id).stage)

    # The state the run ends with

    def _deployable(self, val_stats: EpochStats) -> EpochStats:
        """Validation of what `esper.save_model` would write now: adaptations in flight blended out."""
        in_flight = self.kasmina.blending_seed_ids() if self.kasmina is not None else []
        if not in_flight:
            return val_stats
        with self.model.forced_alpha(0.0, in_flight):
            return self._evaluate_val()

    def _offer_best(self, epoch: int, val_stats: EpochStats) -> None:
        if self.tolaria.keep_best_state:
            self._keep_if_best(epoch, val_stats)

    def _keep_if_best(self, epoch: int, val_stats: EpochStats) -> None:
        deployable = self._deployable(val_stats)
        if self._best.improves(deployable.score, deployable.loss):
            self._best = BestState(epoch, deployable.score, snapshot(self._model_state()), deployable.loss)

    def _rebase_best(self, to_epoch: int) -> None:
        """After a rollback: a best state from the discarded epochs cannot be restored as validated.

        Its fossils may be seeds the rollback locked; the restored state takes its place.
        """
        if not self.tolaria.keep_best_state:
            return
        if self._best.epoch > to_epoch:
            self._best = BestState()
        self._keep_if_best(to_epoch, self._evaluate_val())

    def _settle_on_best_state(self) -> SavedState | None:
        """End with the best validated state when the final one validates worse; say which.

        "Worse" is a lower score, or the same score at a higher validation loss.
        """
        if not self.history.epochs:
            return None
        final_stats = self._deployable(self._evaluate_val())
        final = final_stats.score
        last = self.history.epochs[-1].metrics.epoch
        metric = self.objective.metric
        if self.tolaria.keep_best_state and self._best.state is not None and self._best.beats(final, final_stats.loss):
            self._load_model_state(snapshot(self._best.state))
            tie = (
                f" (the same score, at validation loss {self._best.loss:.4f} against {final_stats.loss:.4f})"
                if self._best.score == final
                else ""
            )
            reason = (
                f"the final state validates {self._shown(final)}, worse than {self._shown(self._best.score)} "
                f"after epoch {self._best.epoch}{tie}: the run ends with that best state"
            )
            self.events.notice(f"epoch {last}: {reason}")
            return SavedState(self._best.epoch, metric.score(self._best.score), metric.score(final), reason)
        reason = "the final state validates best" if self.tolaria.keep_best_state else "keep_best_state is off"
        return SavedState(last, metric.score(final), metric.score(final), reason)

    def _shown(self, score: float) -> str:
        """A score as the metric it stands for ("accuracy 0.9120", "bits_per_character 2.3104")."""
        return f"{self.objective.metric.name} {self.objective.metric.score(score):.4f}"

    def _model_state(self) -> dict[str, Any]:
        if self.kasmina is None:
            return {"model": self.model.state_dict()}
        return {"kasmina": self.kasmina.state_dict()}

    def _load_model_state(self, state: Mapping[str, Any]) -> None:
        if self.kasmina is None:
            self.model.load_state_dict(state["model"])
        else:
            self.kasmina.load_state_dict(state["kasmina"])
        self.optimizers.sync()
