"""Per-seed health statistics, gathered off the training hot path.

Activation statistics are accumulated as tensors during Tolaria's validation pass
(`with model.collecting_telemetry():`) and read once, at the epoch's end. Gradient
statistics come from hooks attached only at sampled training steps.

Units: a FEATURES activation [batch, features] has one unit per feature; an IMAGE
activation [batch, channels, h, w] one per channel (each position is a row); a
SEQUENCE activation [batch, tokens, features] one per feature (each token is a row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from esper.leyline.v1 import blueprint_pb2


@dataclass(frozen=True)
class ActivationSummary:
    """What one telemetry pass saw at one seed site. All zero when it saw nothing."""

    chunk_variance: float = 0.0
    dead_node_ratio: float = 0.0
    avg_correlation: float = 0.0
    activation_mean: float = 0.0
    activation_std: float = 0.0
    execution_latency_us: float = 0.0
    rows: int = 0


def unit_rows(x: Tensor, input_kind: int) -> Tensor:
    """The activation as [rows, units] (see the module docstring)."""
    if input_kind == blueprint_pb2.INPUT_KIND_IMAGE and x.dim() == 4:
        return x.movedim(1, -1).reshape(-1, x.shape[1])  # [batch * h * w, channels]
    return x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(-1, 1)


class ActivationStats:
    """Running sums over one telemetry pass; `summary()` reads them once."""

    def __init__(self, input_kind: int, *, max_units: int, max_rows: int) -> None:
        self._kind = input_kind
        self._max_units = max_units
        self._max_rows = max_rows
        self._rows = 0
        self._sum: Tensor | None = None  # [units] float64
        self._sum_sq: Tensor | None = None  # [units] float64
        self._fired: Tensor | None = None  # [units] bool
        self._units: Tensor | None = None  # indices of the units sampled for correlation
        self._corr_rows = 0
        self._corr_sum: Tensor | None = None  # [k]
        self._corr_outer: Tensor | None = None  # [k, k]
        self._latency_seconds = 0.0
        self._calls = 0

    @torch.no_grad()
    def observe(self, x: Tensor) -> None:
        rows = unit_rows(x.detach(), self._kind).double()
        if self._sum is None or self._sum_sq is None or self._fired is None:
            units = rows.shape[1]
            self._sum = rows.new_zeros(units)
            self._sum_sq = rows.new_zeros(units)
            self._fired = torch.zeros(units, dtype=torch.bool, device=rows.device)
            count = min(units, self._max_units)
            self._units = torch.linspace(0, units - 1, count, device=rows.device).round().long()
            self._corr_sum = rows.new_zeros(count)
            self._corr_outer = rows.new_zeros(count, count)
        self._rows += rows.shape[0]
        self._sum += rows.sum(0)
        self._sum_sq += (rows * rows).sum(0)
        self._fired |= (rows > 0).any(0)
        assert self._units is not None and self._corr_sum is not None and self._corr_outer is not None
        sample = rows[: self._max_rows].index_select(1, self._units)  # [<= max_rows, k]
        self._corr_rows += sample.shape[0]
        self._corr_sum += sample.sum(0)
        self._corr_outer += sample.T @ sample

    def record_latency(self, seconds: float) -> None:
        self._latency_seconds += seconds
        self._calls += 1

    def summary(self) -> ActivationSummary:
        if self._rows == 0 or self._sum is None or self._sum_sq is None or self._fired is None:
            return ActivationSummary(execution_latency_us=self._latency_us())
        mean = self._sum / self._rows
        variance = (self._sum_sq / self._rows - mean * mean).clamp_min(0.0)
        total = self._sum.sum() / (self._rows * mean.numel())
        total_sq = self._sum_sq.sum() / (self._rows * mean.numel())
        std = math.sqrt(max(0.0, float((total_sq - total * total).item())))
        return ActivationSummary(
            chunk_variance=float(variance.mean().item()),
            dead_node_ratio=float(1.0 - self._fired.double().mean().item()),
            avg_correlation=self._avg_correlation(),
            activation_mean=float(total.item()),
            activation_std=std,
            execution_latency_us=self._latency_us(),
            rows=self._rows,
        )

    def _latency_us(self) -> float:
        return self._latency_seconds * 1e6 / self._calls if self._calls else 0.0

    def _avg_correlation(self) -> float:
        """Mean |Pearson correlation| over pairs of sampled units that vary; 0 with fewer than two."""
        if self._corr_sum is None or self._corr_outer is None or self._corr_rows < 2:
            return 0.0
        n = self._corr_rows
        mean = self._corr_sum / n
        covariance = self._corr_outer / n - torch.outer(mean, mean)
        std = covariance.diagonal().clamp_min(0.0).sqrt()
        varying = std > 1e-12
        if int(varying.sum().item()) < 2:
            return 0.0
        cov = covariance[varying][:, varying]
        s = std[varying]
        corr = (cov / torch.outer(s, s)).clamp(-1.0, 1.0).abs()
        k = corr.shape[0]
        off_diagonal = corr.sum() - corr.diagonal().sum()
        return float((off_diagonal / (k * (k - 1))).item())


class GradientSample:
    """Gradient statistics of one sampled training step of one seed.

    Hooks on the kernel's parameters sum the squares of their gradients; for a
    TRAINING seed a hook on its output also records the linearized change of the
    task loss the seed would cause if grafted at its blend (<grad, alpha * s>): the
    seed's own objective, negative when grafting would help. `finish()` reads both
    once and removes the hooks.
    """

    def __init__(self, kernel: nn.Module) -> None:
        params = [p for p in kernel.parameters() if p.requires_grad]
        first = params[0] if params else None
        self._grad_sq: Tensor | None = first.new_zeros((), dtype=torch.float64) if first is not None else None
        self._seen = False
        self._seed_loss: Tensor | None = None
        self._handles: list[RemovableHandle] = [p.register_hook(self._on_param_grad) for p in params]

    def watch_output(self, out: Tensor, s: Tensor, alpha: float) -> None:
        contribution = s.detach() * alpha

        def on_output_grad(grad: Tensor) -> None:
            self._seed_loss = (grad.detach().double() * contribution.double()).sum()

        out.register_hook(on_output_grad)

    def _on_param_grad(self, grad: Tensor) -> None:
        if self._grad_sq is not None:
            self._grad_sq += grad.detach().double().pow(2).sum()
            self._seen = True

    def finish(self) -> tuple[float | None, float | None]:
        """(gradient L2 norm, seed loss) of the step, None for what did not happen; removes the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        norm = math.sqrt(float(self._grad_sq.item())) if self._seen and self._grad_sq is not None else None
        loss = float(self._seed_loss.item()) if self._seed_loss is not None else None
        return norm, loss
