"""The training step and the evaluation pass: small, readable, tensors stay on the device.

Per-step numbers are accumulated as tensors on the device and read once per epoch (one
`.item()` per statistic per epoch), never per step. Batches come from any iterable of
`(inputs, targets)` pairs (esper.tolaria.batches); the loss and the metric from an
`Objective` (esper.tolaria.objective), cross-entropy and accuracy by default. In a
data-parallel run (esper.tolaria.data_parallel) each rank trains on its rows of every
batch and the gradients and the epoch's sums are summed over the ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from esper.data.batching import batches
from esper.tolaria.batches import EVAL_BATCH_SIZE, Batch, to_device
from esper.tolaria.objective import Objective
from esper.tolaria.optimizers import OptimizerSet

if TYPE_CHECKING:
    from esper.tolaria.data_parallel import DataParallel

CPU = torch.device("cpu")
_DEFAULT_OBJECTIVE = Objective()


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and metric over an epoch or an evaluation pass.

    `score` is the metric oriented so that higher is better (the metric itself, or its
    negation for a lower-is-better metric such as bits per character): what every
    comparison of two validations reads.
    """

    loss: float
    metric: float
    steps: int
    finite: bool
    higher_is_better: bool = True

    @property
    def score(self) -> float:
        return self.metric if self.higher_is_better else -self.metric


class _Sums:
    """Loss and metric sums and their weight, kept on the device until the epoch ends."""

    def __init__(self) -> None:
        self.loss: torch.Tensor | None = None
        self.metric: torch.Tensor | None = None
        self.weight = 0

    def add(self, loss: torch.Tensor, metric: torch.Tensor, weight: int) -> None:
        if self.loss is None or self.metric is None:
            self.loss = torch.zeros((), dtype=torch.float64, device=loss.device)
            self.metric = torch.zeros((), dtype=torch.float64, device=loss.device)
        self.loss += loss
        self.metric += metric.to(self.metric.device)
        self.weight += weight

    def reduce(self, ranks: DataParallel) -> None:
        """Sum over the ranks of a data-parallel run, so that every rank reports the whole epoch."""
        device = self.loss.device if self.loss is not None else CPU
        totals = torch.zeros(3, dtype=torch.float64, device=device)
        if self.loss is not None and self.metric is not None:
            totals[0], totals[1] = self.loss, self.metric
        totals[2] = self.weight
        loss, metric, weight = ranks.reduce_totals(totals).unbind()
        self.loss, self.metric, self.weight = loss, metric, int(weight.item())

    def stats(self, steps: int, higher_is_better: bool) -> EpochStats:
        seen = max(1, self.weight)
        loss = float(self.loss.item()) if self.loss is not None else 0.0
        metric = float(self.metric.item()) if self.metric is not None else 0.0
        return EpochStats(
            loss=loss / seen,
            metric=metric / seen,
            steps=steps,
            finite=bool(torch.isfinite(torch.tensor(loss)).item()),
            higher_is_better=higher_is_better,
        )


def train_epoch(
    model: nn.Module,
    optimizers: OptimizerSet,
    batches_: Iterable[Batch],
    *,
    objective: Objective = _DEFAULT_OBJECTIVE,
    device: torch.device = CPU,
    after_step: Callable[[torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    ranks: DataParallel | None = None,
) -> EpochStats:
    """One pass over `batches_`. `after_step(loss)` lets seeds advance their ramps.

    With `ranks` this process trains on its share of each batch, its loss scaled by that
    share, and the gradients are summed over the ranks before the step; `should_stop` is
    then left to the epoch's end, since every rank must take every step.
    """
    model.train()
    sums = _Sums()
    steps = 0
    for inputs, targets in batches_:
        scale = 1.0
        if ranks is not None:
            whole = objective.weight(targets)
            share = ranks.share(inputs, targets)
            if share is None:
                continue  # fewer rows than ranks: skipped on every rank alike
            inputs, targets = share
            scale = objective.weight(targets) / whole
        inputs, targets = to_device(inputs, device), to_device(targets, device)
        optimizers.zero_grad()
        outputs = model(inputs)  # [batch, classes] for a classifier
        loss = objective.loss_fn(outputs, targets)
        step_loss = loss.detach()
        if ranks is None:
            loss.backward()
        else:
            (loss * scale).backward()
            step_loss = ranks.reduce_gradients(model, step_loss * scale)  # the global batch's loss
        optimizers.step()
        if ranks is not None:
            ranks.settle(model)
        if after_step is not None:
            after_step(step_loss)
        weight = objective.weight(targets)
        sums.add(loss.detach() * weight, objective.metric_total(outputs.detach(), targets, weight), weight)
        steps += 1
        if ranks is None and should_stop is not None and should_stop():
            break
    if ranks is not None:
        sums.reduce(ranks)
        ranks.sync_buffers(model)
    return sums.stats(steps, objective.higher_is_better)


@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches_: Iterable[Batch],
    *,
    objective: Objective = _DEFAULT_OBJECTIVE,
    device: torch.device = CPU,
) -> EpochStats:
    """Loss and metric of `model` over `batches_`, in eval mode, without gradients."""
    model.eval()
    sums = _Sums()
    steps = 0
    for inputs, targets in batches_:
        inputs, targets = to_device(inputs, device), to_device(targets, device)
        outputs = model(inputs)
        weight = objective.weight(targets)
        sums.add(
            objective.loss_total(outputs, targets, weight), objective.metric_total(outputs, targets, weight), weight
        )
        steps += 1
    return sums.stats(steps, objective.higher_is_better)


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = EVAL_BATCH_SIZE, objective: Any = None
) -> EpochStats:
    """Loss and metric (accuracy by default) of `model` on in-memory (x, y)."""
    chosen = objective if objective is not None else _DEFAULT_OBJECTIVE
    return evaluate_batches(model, batches(x, y, batch_size, shuffle=False), objective=chosen)


def count_parameters(model: nn.Module) -> int:
    """Parameters the model uses in its forward pass (trainable or frozen)."""
    return sum(p.numel() for p in model.parameters())
