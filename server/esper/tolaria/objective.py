"""What a run optimizes and how it is judged: a loss and a metric with its direction.

The training loop sums a batch's loss and metric with a weight (how many things the
batch's mean is over) and divides once per epoch, so an epoch's figure is the mean
over everything it saw, whatever the batch sizes. Built-in losses and metrics count
what they average over exactly (rows for a classifier, tokens for a language model);
a user's callables return a batch mean and are weighted by the batch's rows.

Everything that compares two validations (Tamiyo's plateau and gain rules, Tolaria's
rollbacks and best state, a seed's eval gain) compares *scores*: the metric itself
when higher is better, its negation when lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2
from esper.tolaria.batches import batch_rows

LossFn = Callable[[Any, Any], Tensor]
MetricFn = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Metric:
    """A validation metric: `fn(outputs, targets)` is the batch's mean value.

    `higher_is_better` is its direction (accuracy: True; a loss or bits per character:
    False). `total(outputs, targets)`, when given, is the batch's sum and `weight(targets)`
    what it is a sum over; the built-in metrics count exactly this way.
    """

    name: str
    fn: MetricFn
    higher_is_better: bool = True
    total: Callable[[Any, Any], Tensor] | None = None

    def score(self, value: float) -> float:
        """The value oriented so that higher is better."""
        return value if self.higher_is_better else -value


def _class_logits(outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """[..., classes] logits and [...] class indices, flattened to [rows, classes] and [rows]."""
    if outputs.dim() > 2:
        return outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)
    return outputs, targets


def _cross_entropy_total(outputs: Tensor, targets: Tensor) -> Tensor:
    logits, labels = _class_logits(outputs, targets)
    return F.cross_entropy(logits, labels, reduction="sum")


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of class logits [..., classes] against class indices [...] (every token for a sequence)."""
    logits, labels = _class_logits(outputs, targets)
    return F.cross_entropy(logits, labels)


def _correct(outputs: Tensor, targets: Tensor) -> Tensor:
    return (outputs.detach().argmax(dim=-1) == targets).sum()


def _accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    return _correct(outputs, targets).double() / max(1, targets.numel())


def _bits_total(outputs: Tensor, targets: Tensor) -> Tensor:
    return _cross_entropy_total(outputs.detach(), targets) / math.log(2.0)


def _bits(outputs: Tensor, targets: Tensor) -> Tensor:
    return _bits_total(outputs, targets) / max(1, targets.numel())


ACCURACY = Metric("accuracy", _accuracy, higher_is_better=True, total=_correct)
BITS_PER_CHARACTER = Metric("bits_per_character", _bits, higher_is_better=False, total=_bits_total)
BUILT_IN_METRICS = {metric.name: metric for metric in (ACCURACY, BITS_PER_CHARACTER)}


def metric_named(name: str) -> Metric:
    """A built-in metric by name; InvalidArgument naming `metric` otherwise."""
    metric = BUILT_IN_METRICS.get(name)
    if metric is None:
        raise InvalidArgument.for_field("metric", f"unknown metric {name!r}; built in: {', '.join(BUILT_IN_METRICS)}")
    return metric


class Objective:
    """A loss to minimize and a metric to report, summed per batch the way the loop needs.

    `loss_fn(outputs, targets)` returns the batch's mean loss (a differentiable 0-d
    tensor); None is `cross_entropy`. `metric` is a `Metric`, a built-in metric's name,
    a plain callable (a batch mean, higher is better), or a `(callable, higher_is_better)`
    pair; None is accuracy.
    """

    def __init__(self, loss_fn: LossFn | None = None, metric: Any = None) -> None:
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else cross_entropy
        self._builtin_loss = loss_fn is None
        self.metric = as_metric(metric)

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    @property
    def is_accuracy(self) -> bool:
        """The metric is accuracy: it fills the accuracy fields, and Tamiyo reads it as such."""
        return self.metric is ACCURACY

    @property
    def metric_direction(self) -> lifecycle_pb2.MetricDirection:
        """How the boundary packet names this metric: UNSPECIFIED for accuracy (the packet's own field)."""
        if self.is_accuracy:
            return lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
        if self.higher_is_better:
            return lifecycle_pb2.METRIC_DIRECTION_HIGHER_IS_BETTER
        return lifecycle_pb2.METRIC_DIRECTION_LOWER_IS_BETTER

    def weight(self, targets: Any) -> int:
        """What the batch's means are over: every class index for the built-in loss, else the batch's rows."""
        if self._builtin_loss and _class_indices(targets):
            return int(targets.numel())
        return batch_rows(targets)

    def loss_total(self, outputs: Any, targets: Any, weight: int) -> Tensor:
        """The batch's summed loss, without gradients."""
        if self._builtin_loss and _class_indices(targets):
            return _cross_entropy_total(outputs, targets)
        return self.loss_fn(outputs, targets).detach() * weight

    def metric_total(self, outputs: Any, targets: Any, weight: int) -> Tensor:
        """The batch's summed metric."""
        with torch.no_grad():
            if self.metric.total is not None and _class_indices(targets) and targets.numel() == weight:
                return self.metric.total(outputs, targets)
            value = self.metric.fn(outputs, targets)
            return torch.as_tensor(value, dtype=torch.float64).detach() * weight


def as_metric(metric: Any) -> Metric:
    """`metric` as a Metric (see Objective); InvalidArgument naming `metric` when it is none of those."""
    if metric is None:
        return ACCURACY
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        return metric_named(metric)
    if isinstance(metric, tuple) and len(metric) == 2 and callable(metric[0]) and isinstance(metric[1], bool):
        fn, higher = metric
        return Metric(getattr(fn, "__name__", "metric"), fn, higher_is_better=higher)
    if callable(metric):
        return Metric(getattr(metric, "__name__", "metric"), metric, higher_is_better=True)
    raise InvalidArgument.for_field(
        "metric", f"must be a Metric, a built-in name, a callable or (callable, higher_is_better); got {metric!r}"
    )


def _class_indices(targets: Any) -> bool:
    return isinstance(targets, Tensor) and not targets.is_floating_point() and not targets.is_complex()
