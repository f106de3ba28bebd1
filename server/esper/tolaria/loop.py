"""The training step and the evaluation pass: small, readable, tensors stay on the device.

Per-step numbers are accumulated as tensors and read once per epoch (one `.item()`
per statistic per epoch), never per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from esper.data.batching import batches
from esper.tolaria.optimizers import OptimizerSet


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and accuracy over an epoch or an evaluation pass."""

    loss: float
    accuracy: float
    steps: int
    finite: bool


def train_epoch(
    model: nn.Module,
    optimizers: OptimizerSet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    after_step: Callable[[torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EpochStats:
    """One pass over the training data. `after_step(loss)` lets seeds advance their ramps."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    steps = 0
    for xb, yb in batches(x, y, batch_size, generator):
        optimizers.zero_grad()
        logits = model(xb)  # [batch, classes]
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizers.step()
        if after_step is not None:
            after_step(loss.detach())
        loss_sum += loss.detach() * xb.shape[0]
        correct += (logits.detach().argmax(dim=1) == yb).sum()
        steps += 1
        if should_stop is not None and should_stop():
            break
    seen = max(1, min(steps * batch_size, x.shape[0]))
    mean_loss = float(loss_sum.item()) / seen
    return EpochStats(
        loss=mean_loss,
        accuracy=float(correct.item()) / seen,
        steps=steps,
        finite=bool(torch.isfinite(loss_sum).item()),
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512) -> EpochStats:
    """Loss and accuracy of `model` on (x, y), in eval mode, without gradients."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    steps = 0
    for xb, yb in batches(x, y, batch_size, shuffle=False):
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(dim=1) == yb).sum()
        steps += 1
    n = max(1, x.shape[0])
    return EpochStats(
        loss=float(loss_sum.item()) / n,
        accuracy=float(correct.item()) / n,
        steps=steps,
        finite=bool(torch.isfinite(loss_sum).item()),
    )


def count_parameters(model: nn.Module) -> int:
    """Parameters the model uses in its forward pass (trainable or frozen)."""
    return sum(p.numel() for p in model.parameters())
