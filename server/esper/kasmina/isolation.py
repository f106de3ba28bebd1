"""Gradient isolation of a TRAINING seed: the straight-through blend and its run-time check.

While TRAINING, a seed's forward value is exactly the host activation `x`, and the
gradient the host receives through the seed is exactly the gradient arriving at
the seed's output, while the kernel gets the gradient it would get if grafted at
blend `alpha` (first order). `StraightThrough` does this with an explicit backward
rather than the `x + (s - s.detach())` idiom: the same gradients, but a kernel that
produces NaN or inf cannot reach the host's forward value (`s - s` would be NaN).

A first-order objective alone has no minimum: the task-loss gradient g at the site
does not change as the kernel's output s grows (s never enters the forward), so
<g, s> keeps falling as s grows along -g, and a kernel trained on it grows without
bound (a transformer's residual block reached 290 times the activation's norm in
100 steps, and its graft cost 1.7 bits per character). With `reach` > 0 the kernel
also gets a proximal term: it minimizes
    alpha * (<g, s> + |g| / (2 * reach * |x|) * |s|^2),
whose minimum is s = -reach * |x| * g / |g|: the kernel fits the direction that
lowers the task loss, at `reach` times the host activation's norm (a step of
functional gradient descent of bounded size). `reach` = 0 is the pure first-order
objective.

The run-time check, on sampled steps, verifies the three ways isolation can break:
the kernel sharing parameters with the host, the output differing from `x`, and the
gradient handed back to the host differing from the one received (for instance a
seed path that forgets to detach the kernel's input). A width seed's kernel reads
another tensor than the one it adds to (what enters the layer it widens); no
gradient at all may reach the host through that input (`LeakProbe`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


class StraightThrough(torch.autograd.Function):
    """forward(x, s, alpha, reach) = x (a copy); backward: d/dx = grad, d/ds = alpha * (grad + proximal term)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, s: Tensor, alpha: float, reach: float) -> Tensor:
        ctx.alpha, ctx.reach = alpha, reach
        if reach > 0.0:
            ctx.save_for_backward(s.detach())
            ctx.x_norm = x.detach().norm()
        # A copy, not x itself: a view returned by a custom Function cannot be modified
        # in place, and hosts often follow a seed site with ReLU(inplace=True).
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        to_kernel = grad
        if ctx.reach > 0.0:
            (s,) = ctx.saved_tensors
            curvature = grad.norm() / (ctx.reach * ctx.x_norm).clamp_min(torch.finfo(grad.dtype).tiny)
            to_kernel = grad + curvature.to(grad.dtype) * s
        return grad, to_kernel * ctx.alpha, None, None


def straight_through(x: Tensor, s: Tensor, alpha: float, reach: float = 0.0) -> Tensor:
    """`x`'s value; gradients as `StraightThrough` says (`reach` 0: the pure first-order objective)."""
    result: Tensor = StraightThrough.apply(x, s, alpha, reach)
    return result


def shared_parameters(kernel: nn.Module, host_parameter_ids: frozenset[int]) -> list[str]:
    """Names of the kernel's parameters that are also host parameters (must be none)."""
    return [name for name, param in kernel.named_parameters() if id(param) in host_parameter_ids]


def identical(a: Tensor, b: Tensor) -> bool:
    """Bit-for-bit equal values, NaNs included: a NaN the host made is not the seed's doing."""
    return torch.equal(a, b) or bool(torch.all((a == b) | (torch.isnan(a) & torch.isnan(b))).item())


def forward_mismatch(x: Tensor, out: Tensor) -> str | None:
    """Why `out` is not exactly `x`, or None when it is."""
    if out.shape != x.shape:
        return f"output shape {list(out.shape)} differs from the host activation's {list(x.shape)}"
    if identical(out, x):
        return None
    difference = (out.detach().double() - x.detach().double()).abs().nan_to_num(nan=float("inf"))
    return f"output differs from the host activation (max |difference| {difference.max().item():.3g})"


class LeakProbe:
    """Checks one backward pass: no gradient may reach `tap`, an alias of a host tensor only the seed reads.

    On a violation the probe reports it and hands the host zeros instead.
    """

    def __init__(self, tap: Tensor, on_violation: Callable[[str], None]) -> None:
        self._on_violation = on_violation
        tap.register_hook(self._reached)

    def _reached(self, grad: Tensor) -> Tensor | None:
        if not bool(grad.any().item()):
            return None
        largest = grad.detach().double().abs().nan_to_num(nan=float("inf")).max().item()
        self._on_violation(f"a gradient reached the host through the kernel's input (max |gradient| {largest:.3g})")
        return torch.zeros_like(grad)


class GradientProbe:
    """Checks one backward pass: the gradient reaching `tap` must equal the one reaching `out`.

    `tap` is an alias of the host activation used only by the seed, so its gradient
    is exactly what the seed hands back to the host. On a mismatch the probe reports
    it and hands the host the gradient it received instead, so the host's update for
    this step stays what it would have been without the seed.
    """

    def __init__(self, tap: Tensor, out: Tensor, on_violation: Callable[[str], None]) -> None:
        self._expected: Tensor | None = None
        self._on_violation = on_violation
        out.register_hook(self._received)
        tap.register_hook(self._handed_back)

    def _received(self, grad: Tensor) -> None:
        self._expected = grad.detach().clone()

    def _handed_back(self, grad: Tensor) -> Tensor | None:
        expected = self._expected
        if expected is None or identical(grad, expected):
            return None
        difference = (grad.double() - expected.double()).abs().nan_to_num(nan=float("inf")).max().item()
        self._on_violation(
            f"gradient to the host differs from the gradient received (max |difference| {difference:.3g})"
        )
        return expected
