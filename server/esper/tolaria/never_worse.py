"""Never worse than static: the part of Tolaria's trainer that keeps growth from wrecking a run.

- A failed epoch (non-finite, or a loss far above the median of the last few epochs) goes
  back to the checkpoint taken before the earliest graft still blending in, or to the
  last good one, and is retried.
- A seed culled after its graft began takes the run back to the checkpoint taken just
  before that graft (host, optimizers, seeds, Tamiyo) when that checkpoint validated
  better than the model without the seed; the run goes on from there.
- After either rollback the seeds adapting in the restored state are locked ROLLED_BACK,
  and the epochs it discarded are trained again.
- The run ends with its best validated deployable state when the final one is worse.

`NeverWorseThanStatic` is a mixin of `TolariaTrainer`, which owns the attributes declared here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esper.data.bundle import Dataset
from esper.leyline.v1 import lifecycle_pb2
from esper.tolaria.checkpoint import snapshot
from esper.tolaria.config import RunConfig, TolariaConfig
from esper.tolaria.events import RunEventLog
from esper.tolaria.loop import EpochStats, evaluate
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
    data: Dataset
    events: RunEventLog
    history: Any
    optimizers: OptimizerSet
    _good: dict[str, Any] | None
    _losses: LossHistory
    _grafts: GraftCheckpoints
    _best: BestState
    _extra_epochs: int

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        raise NotImplementedError

    def _restore(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # Failure and rollback

    def _failure(self, train_stats: EpochStats, val_stats: EpochStats) -> str:
        if not (train_stats.finite and val_stats.finite):
            return "non-finite loss"
        return self._losses.judge(train_stats.loss, val_stats.loss)

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
        now = evaluate(self.model, self.data.x_val, self.data.y_val).accuracy
        names = ", ".join(culled)
        if now >= kept.val_accuracy:
            self.events.notice(
                f"epoch {epoch}: {names} culled after grafting; the model without it validates {now:.4f}, "
                f"not below {kept.val_accuracy:.4f} before its graft (after epoch {kept.epoch}): no rollback"
            )
            return
        reason = (
            f"{names} culled after grafting; the model without it validates {now:.4f}, "
            f"below {kept.val_accuracy:.4f} before {seed_id}'s graft"
        )
        locked = self._restore_and_lock(kept.state, epoch, f"graft rollback at epoch {epoch}: {reason}")
        where = f"the checkpoint taken before {seed_id}'s graft (after epoch {kept.epoch})"
        self._record_rollback(RollbackRecord(epoch, GRAFT, kept.epoch, reason, tuple(locked)), where)

    def _track_grafts(self, epoch: int, val_accuracy: float) -> None:
        """A seed whose graft began at this boundary gets this boundary's checkpoint; finished seeds drop theirs."""
        blending = set(self.kasmina.blending_seed_ids())
        self._grafts.keep_only(blending)
        assert self._good is not None
        for seed_id in sorted(blending - set(self._grafts.by_seed)):
            if self._stage(seed_id) == lifecycle_pb2.SEED_STAGE_GRAFTING:
                self._grafts.by_seed[seed_id] = GraftCheckpoint(epoch, val_accuracy, self._good)

    def _restore_and_lock(self, state: Mapping[str, Any], epoch: int, reason: str) -> list[str]:
        """Restore `state`; the seeds adapting in it are locked ROLLED_BACK. Returns them."""
        self._restore(snapshot(dict(state)))
        self._grafts = GraftCheckpoints()
        if self.kasmina is None:
            return []
        locked = self.kasmina.active_seed_ids()
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

    def _deployable_accuracy(self, val_stats: EpochStats) -> float:
        """Validation accuracy of what `esper.save_model` would write now: adaptations in flight blended out."""
        in_flight = self.kasmina.blending_seed_ids() if self.kasmina is not None else []
        if not in_flight:
            return val_stats.accuracy
        with self.model.forced_alpha(0.0, in_flight):
            return evaluate(self.model, self.data.x_val, self.data.y_val).accuracy

    def _offer_best(self, epoch: int, val_stats: EpochStats) -> None:
        if not self.tolaria.keep_best_state:
            return
        accuracy = self._deployable_accuracy(val_stats)
        if self._best.improves(accuracy):
            self._best = BestState(epoch, accuracy, snapshot(self._model_state()))

    def _rebase_best(self, to_epoch: int) -> None:
        """After a rollback: a best state from the discarded epochs cannot be restored as validated.

        Its fossils may be seeds the rollback locked; the restored state takes its place.
        """
        if not self.tolaria.keep_best_state:
            return
        if self._best.epoch > to_epoch:
            self._best = BestState()
        accuracy = self._deployable_accuracy(evaluate(self.model, self.data.x_val, self.data.y_val))
        if self._best.improves(accuracy):
            self._best = BestState(to_epoch, accuracy, snapshot(self._model_state()))

    def _settle_on_best_state(self) -> SavedState | None:
        """End with the best validated state when the final one validates worse; say which."""
        if not self.history.epochs:
            return None
        final = self._deployable_accuracy(evaluate(self.model, self.data.x_val, self.data.y_val))
        last = self.history.epochs[-1].metrics.epoch
        if self.tolaria.keep_best_state and self._best.state is not None and self._best.accuracy > final:
            self._load_model_state(snapshot(self._best.state))
            reason = (
                f"the final state validates {final:.4f}, below {self._best.accuracy:.4f} after epoch "
                f"{self._best.epoch}: the run ends with that best state"
            )
            self.events.notice(f"epoch {last}: {reason}")
            return SavedState(self._best.epoch, self._best.accuracy, final, reason)
        reason = "the final state validates best" if self.tolaria.keep_best_state else "keep_best_state is off"
        return SavedState(last, final, final, reason)

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
