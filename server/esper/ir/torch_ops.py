"""PyTorch modules for the IR's ops; semantics as documented in `esper.ir.ops`.

Every module is mode-free (no BatchNorm, no dropout) and draws its initial values
from the generator it is given, never from torch's global RNG, so a block is the
same for the same `init_seed` on any process.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> nn.Parameter:
    values = torch.empty(shape).uniform_(-bound, bound, generator=generator)
    return nn.Parameter(values)


class Linear(nn.Module):
    """Dense layer on the last dim, PyTorch's default init times `init_scale`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        init_scale: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        bound = init_scale / math.sqrt(in_features)
        self.weight = _uniform((out_features, in_features), bound, generator)
        self.bias = _uniform((out_features,), bound, generator) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class Conv2d(nn.Module):
    """2-D convolution on [batch, C, H, W], PyTorch's default init times `init_scale`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        padding: int,
        groups: int,
        bias: bool,
        init_scale: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        per_group = in_channels // groups
        bound = init_scale / math.sqrt(per_group * kernel_size * kernel_size)
        self.weight = _uniform((out_channels, per_group, kernel_size, kernel_size), bound, generator)
        self.bias = _uniform((out_channels,), bound, generator) if bias else None
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding, groups=self.groups)


class LayerNorm(nn.Module):
    """Last-dim layer norm for rank 1/2 activations; over [C, H, W] with a per-channel affine for rank 3."""

    def __init__(self, shape: tuple[int, ...], *, eps: float) -> None:
        super().__init__()
        self.over_image = len(shape) == 3
        size = shape[0] if self.over_image else shape[-1]
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if self.over_image:
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        return F.layer_norm(x, (self.weight.shape[0],), self.weight, self.bias, self.eps)


class GroupNorm(nn.Module):
    """Group norm on [batch, C, H, W] with a per-channel affine."""

    def __init__(self, channels: int, *, num_groups: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.num_groups, self.eps = num_groups, eps

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class SelfAttention(nn.Module):
    """Multi-head self-attention on [batch, T, D]; `causal` masks later tokens."""

    def __init__(
        self, dim: int, *, num_heads: int, init_scale: float, generator: torch.Generator, causal: bool = False
    ) -> None:
        super().__init__()
        # Xavier for the q/k/v projections and zero biases, as nn.MultiheadAttention does.
        self.qkv_weight = _uniform((3 * dim, dim), math.sqrt(3.0 / dim), generator)
        self.qkv_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_weight = _uniform((dim, dim), init_scale / math.sqrt(dim), generator)
        self.out_bias = nn.Parameter(torch.zeros(dim))
        self.num_heads = num_heads
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = F.linear(x, self.qkv_weight, self.qkv_bias)  # [batch, T, 3D]
        qkv = qkv.reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        # [batch, heads, T, D / heads]
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=self.causal)
        merged = attended.transpose(1, 2).reshape(batch, tokens, dim)
        return F.linear(merged, self.out_weight, self.out_bias)


class Scale(nn.Module):
    """Learnable per-channel factor on the last dim (rank 1/2) or on C (rank 3)."""

    def __init__(self, shape: tuple[int, ...], *, init_value: float) -> None:
        super().__init__()
        factor_shape = (shape[0], 1, 1) if len(shape) == 3 else (shape[-1],)
        self.weight = nn.Parameter(torch.full(factor_shape, init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class Elementwise(nn.Module):
    """A parameter-free op of one or two inputs (activations, ADD, MUL, pooling)."""

    def __init__(self, fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.fn(*inputs)


class Reshape(nn.Module):
    """Reshape the non-batch dims."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


class MaxPool2d(nn.Module):
    """Max pooling on [batch, C, H, W], no padding."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)


def global_avg_pool(x: Tensor) -> Tensor:
    return x.mean(dim=(-2, -1), keepdim=True)
