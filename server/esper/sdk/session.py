"""`esper.Session`: Esper inside a training loop you keep.

    session = esper.Session(model, val_loader, epochs=10, loss_fn=loss_fn)
    model, optimizer = session.model, session.optimizer
    for epoch in range(10):
        for inputs, targets in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            session.step(loss)
        session.end_epoch()
    result = session.finish()

`session.model` is your model wrapped with seeds, on the session's device; call it as
your model. `session.optimizer` steps the host's parameters and every seed's, and
follows the model as it grows (a seed's parameters join and leave it; a widened layer
keeps its optimizer state); use it in place of your own. `step(loss)` after each
optimizer step moves the seeds' ramps and counters on. `end_epoch()` is the epoch
boundary of `esper run`: validation, the never-worse-than-static checks (a rollback
puts model, optimizer and seeds back to a checkpoint: the epoch's dict then says
`"rolled_back": True`), Tamiyo's decisions and Kasmina's commands. `finish()` settles on
the best validated state and returns the same `FitResult` as `esper.Trainer.fit()`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esper.errors import FailedPrecondition
from esper.kasmina.morphable import MorphableModel
from esper.sdk.run import FitResult, SdkRun, check_arguments, epoch_dict
from esper.tamiyo.config import HEURISTIC_POLICY_ID
from esper.tolaria.batches import Batch
from esper.tolaria.config import EsperConfig
from esper.tolaria.data_parallel import launched_by_torchrun
from esper.tolaria.loop import EpochStats
from esper.tolaria.optimizers import OptimizerSet


class Session:
    """Esper's epoch boundary and seed bookkeeping for a loop of your own (see the module docstring).

    Arguments are `esper.Trainer`'s, without `train_data`: `epochs` is how many epochs
    your loop runs (Tamiyo starts no adaptation that could not finish in them).
    """

    def __init__(
        self,
        model: nn.Module,
        val_data: Iterable[Batch],
        *,
        epochs: int,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
        metric: Any = None,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        policy: str = HEURISTIC_POLICY_ID,
        device: str | torch.device = "auto",
        out: str | Path | None = None,
        config: EsperConfig | None = None,
        test_data: Iterable[Batch] | None = None,
        example_input: Any = None,
        seed: int = 0,
    ) -> None:
        check_arguments(policy=policy, epochs=epochs, seed=seed, config=config, out=out)
        if launched_by_torchrun():
            # Every rank would grow its own model and write the same run folder.
            raise FailedPrecondition(
                "esper.Session trains in one process; under torchrun, esper.Trainer trains data-parallel"
            )
        self._run = SdkRun(
            model,
            None,
            val_data,
            loss_fn=loss_fn,
            metric=metric,
            optimizer=optimizer,
            epochs=epochs,
            policy=policy,
            device=device,
            out=out,
            config=config,
            test_data=test_data,
            example_input=example_input,
            seed=seed,
        )
        self._trainer = self._run.trainer
        self._trainer.begin()
        self.epoch = 0
        self._finished = False
        self._epoch_started = time.perf_counter()
        self._loss_sum: torch.Tensor | None = None
        self._metric_sum: torch.Tensor | None = None
        self._weight = 0
        self._metric_weight = 0
        self._steps = 0

    @property
    def model(self) -> MorphableModel:
        """Your model with its seeds, on the session's device: train and call it as yours."""
        model: MorphableModel = self._trainer.model
        return model

    @property
    def optimizer(self) -> OptimizerSet:
        """The host's and the seeds' optimizers as one: `zero_grad()`, `step()`, `state_dict()`."""
        return self._trainer.optimizers

    @property
    def device(self) -> torch.device:
        return self._trainer.device

    def step(self, loss: torch.Tensor, outputs: Any = None, targets: Any = None) -> None:
        """After each optimizer step: the seeds move on, and the epoch's training loss (and, given
        `outputs` and `targets`, its metric) accumulates without leaving the device."""
        self._check_open()
        detached = loss.detach()
        self.model.step(detached)
        weight = self._trainer.objective.weight(targets) if targets is not None else 1
        self._loss_sum = detached.double() * weight + (self._loss_sum if self._loss_sum is not None else 0.0)
        self._weight += weight
        if outputs is not None and targets is not None:
            total = self._trainer.objective.metric_total(outputs.detach(), targets, weight).double()
            self._metric_sum = total + (self._metric_sum if self._metric_sum is not None else 0.0)
            self._metric_weight += weight
        self._steps += 1

    def end_epoch(self) -> dict[str, Any]:
        """The epoch boundary; returns the epoch as `FitResult.history` holds it.

        When the epoch failed (a diverging or non-finite loss) the model, optimizer and
        seeds are back at a checkpoint and the dict says `"rolled_back": True`.
        """
        self._check_open()
        if not self._steps:
            raise FailedPrecondition("end_epoch: call session.step(loss) after every optimizer step of the epoch")
        stats = self._train_stats()
        closed = self._trainer.close_epoch(self.epoch, stats, self._epoch_started)
        self._epoch_started = time.perf_counter()
        self._loss_sum, self._metric_sum, self._weight, self._metric_weight, self._steps = None, None, 0, 0, 0
        if not closed:
            return {"epoch": self.epoch, "rolled_back": True}
        record = self._trainer.history.epochs[-1]
        self.epoch += 1
        return {**epoch_dict(record), "rolled_back": False}

    def finish(self) -> FitResult:
        """Settle on the best validated state, evaluate, write the run folder; the session is closed after."""
        self._check_open()
        self._finished = True
        history = self._trainer.finish()
        return self._run.finish(history)

    def _train_stats(self) -> EpochStats:
        objective = self._trainer.objective
        loss = float(self._loss_sum.item()) / max(1, self._weight) if self._loss_sum is not None else math.nan
        metric = (
            float(self._metric_sum.item()) / max(1, self._metric_weight) if self._metric_sum is not None else math.nan
        )
        return EpochStats(
            loss=loss,
            metric=metric,
            steps=self._steps,
            finite=math.isfinite(loss),
            higher_is_better=objective.higher_is_better,
        )

    def _check_open(self) -> None:
        if self._finished:
            raise FailedPrecondition("this esper.Session has finished; start a new one")
