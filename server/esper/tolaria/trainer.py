"""Tolaria, the training academy: the loop that lets a model grow while it learns.

One epoch: train -> validate (gathering seed telemetry) -> measure evaluating seeds
-> epoch-end hook (Tamiyo decides, Kasmina applies) -> optimizers follow the seeds
-> checkpoint.

Never worse than static (esper.tolaria.never_worse): a diverging epoch, or a culled
graft that left the model worse than before it, goes back to a checkpoint; the run
ends with its best validated state.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esper.data.bundle import Dataset
from esper.errors import DeadlineExceeded, FailedPrecondition, NotFound, Unavailable
from esper.kasmina.layers import host_layers
from esper.leyline.v1 import control_pb2, kasmina_pb2, lifecycle_pb2, run_pb2, tamiyo_pb2, telemetry_pb2
from esper.observability.spans import esper_attributes, tracer
from esper.tolaria.batches import Batch, RunData, TensorData
from esper.tolaria.checkpoint import load_checkpoint, save_checkpoint, snapshot
from esper.tolaria.config import RunConfig, TolariaConfig
from esper.tolaria.data_parallel import DataParallel, controller_for_rank
from esper.tolaria.devices import device_kind
from esper.tolaria.events import RunEventLog
from esper.tolaria.hook import BoundaryState, HookOutcome, run_hook
from esper.tolaria.loop import EpochStats, count_parameters, evaluate_batches, train_epoch
from esper.tolaria.metrics import SEED_CENSUS, observe_epoch, observe_hook
from esper.tolaria.never_worse import NeverWorseThanStatic, TrainingFailed
from esper.tolaria.objective import Objective
from esper.tolaria.optimizers import OptimizerFactory, OptimizerSet, adam_factory
from esper.tolaria.safety import BestState, GraftCheckpoints, LossHistory, RollbackRecord, SavedState

__all__ = ["EpochRecord", "TolariaTrainer", "TrainingFailed", "TrainingHistory"]

logger = logging.getLogger(__name__)
_TRACER = tracer(__name__)


@dataclass
class EpochRecord:
    """One line of metrics.jsonl."""

    metrics: run_pb2.EpochMetrics
    wall_seconds: float
    hook: HookOutcome | None


@dataclass
class TrainingHistory:
    """What a finished run leaves behind besides the model."""

    epochs: list[EpochRecord] = field(default_factory=list)
    rollbacks: int = 0
    best_val_score: float = -math.inf
    cancelled: bool = False
    rollback_log: list[RollbackRecord] = field(default_factory=list)
    saved: SavedState | None = None

    def hook_ms(self) -> list[float]:
        return [record.hook.total_ms for record in self.epochs if record.hook is not None]


class TolariaTrainer(NeverWorseThanStatic):
    """Trains `model` with `controller` steering its seeds through `kasmina`.

    `run` and `tolaria` are the config's sections of those names (their defaults when
    None). Without `kasmina` (a static baseline) the model trains as is and the hook is
    skipped. `data` is Esper's in-memory `Dataset` (batched by `run.batch_size`) or any
    `RunData` (esper.tolaria.batches: a user's DataLoaders). `objective` is the loss and
    metric (cross-entropy and accuracy when None). `optimizer` builds the host's
    optimizer and each seed's from their parameters (None: Adam at `run.learning_rate`
    for the host, at `tolaria.seed_learning_rate` for seeds). The model, and the batches
    as they are used, live on `device`.
    """

    def __init__(
        self,
        model: nn.Module,
        controller: Any = None,
        run: RunConfig | None = None,
        tolaria: TolariaConfig | None = None,
        *,
        data: Dataset | RunData,
        kasmina: Any = None,
        objective: Objective | None = None,
        optimizer: OptimizerFactory | None = None,
        device: torch.device | str = "cpu",
        run_id: str = "run",
        events: RunEventLog | None = None,
        checkpoint_path: Path | None = None,
        on_epoch: Callable[[EpochRecord, TrainingHistory], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_boundary: Callable[[Sequence[telemetry_pb2.SeedTelemetry], Sequence[control_pb2.FieldReport]], None]
        | None = None,
        on_layout: Callable[[Sequence[telemetry_pb2.SeedDescriptor]], None] | None = None,
    ) -> None:
        self.run = run if run is not None else RunConfig()
        self.tolaria = tolaria if tolaria is not None else TolariaConfig()
        self.model: Any = model if kasmina is not None else _as_trainable(model)
        self.controller = controller
        self.kasmina = kasmina
        self.data: RunData = TensorData(data, self.run.batch_size) if isinstance(data, Dataset) else data
        self.objective = objective if objective is not None else Objective()
        self.device = torch.device(device)
        self.run_id = run_id
        self.events = events if events is not None else RunEventLog(run_id)
        self.checkpoint_path = checkpoint_path
        self.on_epoch = on_epoch
        self.should_stop = should_stop or (lambda: False)
        self.on_boundary = on_boundary
        # Sees the seed layout before training and after each boundary: when the host grew, dormant
        # width seeds have new shapes, and their kernels are made (and awaited) before Tamiyo asks.
        self.on_layout = on_layout
        self.generator = torch.Generator().manual_seed(self.run.seed)
        make = optimizer or adam_factory(self.run.learning_rate, self.run.weight_decay)
        seed_make = optimizer or adam_factory(self.tolaria.seed_learning_rate, 0.0)
        self.optimizers = OptimizerSet(self.model, make, seed_make)  # type: ignore[arg-type]
        self.history = TrainingHistory()
        self.start_epoch = 0
        self._good: dict[str, Any] | None = None
        self._last_controller_state: tamiyo_pb2.TamiyoControllerState | None = None
        self._losses = LossHistory(
            self.tolaria.divergence_window, self.tolaria.divergence_factor, self.tolaria.divergence_min_loss
        )
        self._grafts = GraftCheckpoints()
        self._best = BestState()
        self._extra_epochs = 0
        self.ranks: DataParallel | None = None

    def join_data_parallel(self, ranks: DataParallel) -> None:
        """Train as one rank of a data-parallel run (esper.tolaria.data_parallel).

        Each epoch trains this rank's share of every batch; rank 0's Tamiyo decides at each
        boundary and every rank applies its commands. Call before `train()`.
        """
        self.ranks = ranks
        if self.kasmina is not None:
            self.controller = controller_for_rank(self.controller, ranks)

    @property
    def planned_epochs(self) -> int:
        """The configured epochs plus those trained again because a rollback discarded them."""
        return self.run.epochs + self._extra_epochs

    # The loop

    def train(self) -> tuple[nn.Module, TrainingHistory]:
        """Train for the configured epochs; returns the (grown) model and its history."""
        self.begin()
        epoch = self.start_epoch
        try:
            while epoch < self.planned_epochs and not self.should_stop():
                if self._run_epoch(epoch):
                    epoch += 1
        finally:
            SEED_CENSUS.forget(self.run_id)
        self.finish(cancelled=self.should_stop() and epoch < self.planned_epochs)
        return self.model, self.history

    def begin(self) -> None:
        """Before the first epoch: kernels for the seed sites, and the state a failure in it goes back to."""
        if self.ranks is not None:
            self.ranks.sync_model(self.model)
        if self.on_layout is not None and self.kasmina is not None:
            self.on_layout(self.model.seed_layout())
        self._good = snapshot(self._checkpoint_state(self.start_epoch - 1))

    def finish(self, *, cancelled: bool = False) -> TrainingHistory:
        """After the last epoch: settle on the best validated state and release the seeds' resources."""
        self.history.cancelled = cancelled
        self.history.saved = self._settle_on_best_state()
        if self.kasmina is not None:
            self.kasmina.close()
        return self.history

    def _run_epoch(self, epoch: int) -> bool:
        """One epoch as the root span `tolaria.epoch` of its trace (the boundary's decisions are inside)."""
        with _TRACER.start_as_current_span(
            "tolaria.epoch", attributes=esper_attributes(run_id=self.run_id, epoch=epoch)
        ) as span:
            closed = self._train_and_close(epoch)
            span.set_attribute("esper.rolled_back", not closed)
            return closed

    def _train_and_close(self, epoch: int) -> bool:
        """Train and close one epoch; False when it was rolled back and must be retried."""
        started = time.perf_counter()
        after_step = getattr(self.model, "step", None) if self.kasmina is not None else None
        with _TRACER.start_as_current_span("tolaria.train"):
            train_stats = train_epoch(
                self.model,
                self.optimizers,
                self.data.train_batches(self.generator),
                objective=self.objective,
                device=self.device,
                after_step=after_step,
                should_stop=self.should_stop,
                ranks=self.ranks,
            )
        return self.close_epoch(epoch, train_stats, started)

    def close_epoch(self, epoch: int, train_stats: EpochStats, started: float) -> bool:
        """Everything after an epoch's training: validate, judge, the boundary hook, checkpoint.

        `started` is the epoch's `time.perf_counter()` start. False when the epoch was
        rolled back (the model, optimizers and seeds are back at a checkpoint) and must be
        trained again. A loop of the caller's own (esper.sdk.EsperSession) calls it too.
        """
        with _TRACER.start_as_current_span("tolaria.validate"):
            val_stats = self._validate()
        failure = self._failure(train_stats, val_stats)
        if failure:
            self._roll_back(epoch, failure)
            return False
        self._losses.record(train_stats.loss, val_stats.loss)
        self._offer_best(epoch, val_stats)
        epoch_ms = int((time.perf_counter() - started) * 1e3)
        hook = self._epoch_boundary(epoch, train_stats, val_stats, epoch_ms) if self.kasmina else None
        self.history.best_val_score = max(self.history.best_val_score, val_stats.score)
        if hook is not None:
            self._judge_culled_grafts(epoch)
        record = EpochRecord(
            metrics=self._metrics(epoch, train_stats, val_stats, hook),
            wall_seconds=time.perf_counter() - started,
            hook=hook,
        )
        self.history.epochs.append(record)
        observe_epoch(record.wall_seconds)
        SEED_CENSUS.update(self.run_id, record.metrics.seed_stages)
        self.events.emit(epoch_completed=record.metrics)
        self._good = snapshot(self._checkpoint_state(epoch))
        if self.kasmina is not None:
            self._track_grafts(epoch, val_stats.score)
        if self.checkpoint_path is not None and (epoch + 1) % self.tolaria.checkpoint_every == 0:
            save_checkpoint(self.checkpoint_path, {**self._good, **self._side_state()})
        if self.on_epoch is not None:
            self.on_epoch(record, self.history)
        return True

    def _evaluate_val(self) -> EpochStats:
        """The model as it is now on the validation batches."""
        return evaluate_batches(self.model, self.data.val_batches(), objective=self.objective, device=self.device)

    def _validate(self) -> EpochStats:
        if self.kasmina is None:
            return self._evaluate_val()
        with self.model.collecting_telemetry():
            stats = self._evaluate_val()
        for seed_id in self.kasmina.measured_seed_ids():
            # The seed's real contribution: the same validation data with it blended out.
            with self.model.forced_alpha(0.0, [seed_id]):
                without = self._evaluate_val()
            self.kasmina.record_eval_gain(seed_id, stats.score - without.score)
        return stats

    def _epoch_boundary(self, epoch: int, train_stats: EpochStats, val_stats: EpochStats, epoch_ms: int) -> HookOutcome:
        telemetry = self.kasmina.on_epoch_end(epoch, validation_score=val_stats.score)
        state = BoundaryState(
            run_id=self.run_id,
            epoch=epoch,
            global_step=self.model.global_step,
            training_loss=train_stats.loss,
            validation_loss=val_stats.loss,
            validation_accuracy=val_stats.metric if self.objective.is_accuracy else 0.0,
            validation_metric=0.0 if self.objective.is_accuracy else val_stats.metric,
            metric_direction=self.objective.metric_direction,
            epoch_ms=epoch_ms,
            parameter_count=count_parameters(self.model),
            final_epoch=self.planned_epochs - 1,
            seed_layout=self.model.seed_layout(),
            telemetry=telemetry,
            host_layers=host_layers(self.model.host, self.model.seed_layout()),
            device_kind=device_kind(self.device),
        )
        outcome = run_hook(state, self.controller, self.kasmina)
        observe_hook(outcome)
        self._record_boundary(epoch, outcome)
        if self.on_boundary is not None:
            self.on_boundary(telemetry, outcome.field_reports)
        if self.on_layout is not None:
            self.on_layout(self.model.seed_layout())
        if self.optimizers.sync():
            logger.debug("epoch %d: optimizers follow the seeds' new parameter sets", epoch)
        if self.ranks is not None:
            applied = [command.command_id for command in outcome.applied]
            refused = [command.command_id for command, _ in outcome.refused]
            self.ranks.check_agreement(epoch, self.model, applied, refused)
        return outcome

    def _record_boundary(self, epoch: int, outcome: HookOutcome) -> None:
        if outcome.controller_error:
            self.events.notice(f"epoch {epoch}: {outcome.controller_error}; running conservatively")
        for decision in outcome.decisions:
            self.events.decision(decision)
        for command, reason in outcome.refused:
            name = lifecycle_pb2.CommandType.Name(command.command_type)
            self.events.notice(
                f"epoch {epoch}: command {command.command_id} ({name} {command.seed_id}) refused: {reason}"
            )
        for transition in self.kasmina.drain_transitions():
            self.events.transition(transition)
        for report in outcome.field_reports:
            self.events.field_report(report)
        if outcome.total_ms > self.tolaria.hook_budget_ms:
            self.events.notice(
                f"epoch {epoch}: epoch-end hook took {outcome.total_ms:.1f} ms "
                f"(budget {self.tolaria.hook_budget_ms:.0f} ms)"
            )

    # Checkpoints

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        state: dict[str, Any] = {
            "epoch": epoch,
            "run_id": self.run_id,
            "optimizers": self.optimizers.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_val_score": self.history.best_val_score,
            "losses": self._losses.state_dict(),
            "rollbacks": self.history.rollbacks,
            "rollback_log": [record.to_dict() for record in self.history.rollback_log],
        }
        if self.kasmina is None:
            state["model"] = self.model.state_dict()
        else:
            state["kasmina"] = self.kasmina.state_dict()
            if self.controller is not None:
                state["tamiyo"] = self._controller_state().SerializeToString()
        return state

    def _controller_state(self) -> tamiyo_pb2.TamiyoControllerState:
        """Tamiyo's state for a checkpoint: the last one exported if Tamiyo cannot answer now."""
        try:
            exported = self.controller.export_controller_state(
                tamiyo_pb2.ExportControllerStateRequest(run_id=self.run_id)
            )
        except NotFound:
            # Tamiyo has not seen the run yet: its state is the empty one.
            return tamiyo_pb2.TamiyoControllerState(run_id=self.run_id)
        except (Unavailable, DeadlineExceeded) as exc:
            # A Tamiyo that never answered knows nothing of the run: its state is the empty one.
            known = self._last_controller_state or tamiyo_pb2.TamiyoControllerState(run_id=self.run_id)
            self.events.notice(f"Tamiyo unavailable for the checkpoint ({exc.code}); kept its last known state")
            return known
        state: tamiyo_pb2.TamiyoControllerState = exported.state
        self._last_controller_state = state
        return state

    def _restore(self, state: Mapping[str, Any]) -> None:
        if self.kasmina is None:
            self.model.load_state_dict(state["model"])
        else:
            self.kasmina.load_state_dict(state["kasmina"])
            if "tamiyo" in state and self.controller is not None:
                restored = tamiyo_pb2.TamiyoControllerState.FromString(state["tamiyo"])
                self._last_controller_state = restored
                self.controller.restore_controller_state(tamiyo_pb2.RestoreControllerStateRequest(state=restored))
        self.optimizers.sync()
        self.optimizers.load_state_dict(state["optimizers"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history.best_val_score = float(state.get("best_val_score", state.get("best_val_accuracy", -math.inf)))
        self._losses.load_state_dict(state.get("losses", {}))

    def _side_state(self) -> dict[str, Any]:
        """What the file checkpoint keeps beside the training state (never restored by a rollback)."""
        return {
            "graft_checkpoints": self._grafts.state_dict(),
            "best_state": self._best.state_dict(),
            "extra_epochs": self._extra_epochs,
        }

    def resume(self, path: Path) -> int:
        """Continue from a checkpoint file; returns the first epoch still to train."""
        state = load_checkpoint(path)
        self._restore(state)
        self.history.rollbacks = int(state["rollbacks"])
        self.history.rollback_log = [RollbackRecord.from_dict(item) for item in state.get("rollback_log", [])]
        self._grafts.load_state_dict(state.get("graft_checkpoints", {}))
        if "best_state" in state:
            self._best.load_state_dict(state["best_state"])
        self._extra_epochs = int(state.get("extra_epochs", 0))
        self.start_epoch = int(state["epoch"]) + 1
        self.events.notice(f"resumed from {path} after epoch {state['epoch']}")
        return self.start_epoch

    # Reporting

    def _metrics(
        self, epoch: int, train_stats: EpochStats, val_stats: EpochStats, hook: HookOutcome | None
    ) -> run_pb2.EpochMetrics:
        metrics = run_pb2.EpochMetrics(
            epoch=epoch,
            train_loss=train_stats.loss,
            train_accuracy=train_stats.metric if self.objective.is_accuracy else 0.0,
            val_loss=val_stats.loss,
            val_accuracy=val_stats.metric if self.objective.is_accuracy else 0.0,
            train_metric=train_stats.metric,
            val_metric=val_stats.metric,
            parameter_count=count_parameters(self.model),
            hook_ms=hook.total_ms if hook is not None else 0.0,
        )
        if self.kasmina is not None:
            for seed in self.kasmina.list_seed_states(
                kasmina_pb2.ListSeedStatesRequest(run_id=self.run_id, page_size=1000)
            ).seeds:
                name = lifecycle_pb2.SeedStage.Name(seed.stage).removeprefix("SEED_STAGE_")
                metrics.seed_stages[seed.descriptor.seed_id] = name
        return metrics

    def in_flight_seed_ids(self) -> list[str]:
        """Seeds whose adaptation had not finished when training stopped."""
        return list(self.kasmina.active_seed_ids()) if self.kasmina is not None else []

    def saved_parameter_count(self) -> int:
        """Parameters of the model that is saved: the host and FOSSILIZED seeds, not adaptations in flight."""
        in_flight = sum(
            p.numel() for seed_id in self.in_flight_seed_ids() for p in self.model.seed(seed_id).kernel_parameters()
        )
        return count_parameters(self.model) - in_flight

    def evaluate_saved(self, batches: Iterable[Batch]) -> EpochStats:
        """Loss and metric of the model that is saved over `batches`; called after training.

        Only the host and FOSSILIZED seeds make up the saved model, so adaptations still
        in flight are blended out here too: the reported number is the saved model's.
        """
        in_flight = self.in_flight_seed_ids()
        with self.model.forced_alpha(0.0, in_flight) if in_flight else contextlib.nullcontext():
            return evaluate_batches(self.model, batches, objective=self.objective, device=self.device)

    def test_stats(self) -> EpochStats | None:
        """The saved model on the held-out test batches; None when the run has none."""
        test = self.data.test_batches()
        return self.evaluate_saved(test) if test is not None else None

    def test_accuracy(self) -> EpochStats:
        """`test_stats` of a run that has a test split (Esper's data sets always do)."""
        stats = self.test_stats()
        if stats is None:
            raise FailedPrecondition("this run has no test data")
        return stats


def _as_trainable(model: nn.Module) -> nn.Module:
    """A plain module trains as a morphable model with no seeds: the same interface, nothing grows."""
    if hasattr(model, "host_parameters") and hasattr(model, "seed_parameter_groups"):
        return model
    from esper.kasmina.config import KasminaConfig
    from esper.kasmina.morphable import MorphableModel

    return MorphableModel(model, [], KasminaConfig())
