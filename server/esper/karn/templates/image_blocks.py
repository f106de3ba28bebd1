"""Block bodies for image feature maps [C, H, W]; every convolution keeps H and W."""

from __future__ import annotations

from esper.ir import IRBuilder
from esper.ir.limits import MAX_HEADS
from esper.karn.templates.blocks import GELU, RELU, SIGMOID, TANH
from esper.karn.templates.spec import LAST_LAYER_INIT_SCALE, Body, Requirement

_SMALL = LAST_LAYER_INIT_SCALE


def _channels(b: IRBuilder) -> int:
    return b.shape(b.input)[0]


def conv_stack(activation: int, kernel: int, depth: int = 2, *, width_factor: int = 1, init_scale: float = 1.0) -> Body:
    """(conv k -> act) x (depth - 1), then conv k (small) back to C channels."""

    def body(b: IRBuilder) -> str:
        channels = _channels(b)
        x = b.input
        for _ in range(depth - 1):
            x = b.activation(activation, b.conv2d(x, channels * width_factor, kernel, init_scale=init_scale))
        return b.conv2d(x, channels, kernel, init_scale=_SMALL)

    return body


def tanh_conv_chain(depth: int) -> Body:
    def body(b: IRBuilder) -> str:
        x = b.input
        for _ in range(depth):
            x = b.activation(TANH, b.conv2d(x, _channels(b), 3, init_scale=3.0))
        return b.conv2d(x, _channels(b), 1, init_scale=_SMALL)

    return body


def bottleneck(ratio: int) -> Body:
    """1x1 reduce to C/ratio -> ReLU -> 3x3 -> ReLU -> 1x1 expand (small)."""

    def body(b: IRBuilder) -> str:
        channels = _channels(b)
        width = max(1, channels // ratio)
        x = b.activation(RELU, b.conv2d(b.input, width, 1))
        x = b.activation(RELU, b.conv2d(x, width, 3))
        return b.conv2d(x, channels, 1, init_scale=_SMALL)

    return body


def depthwise_separable(kernel: int, activation: int) -> Body:
    """Depthwise k x k (groups = C) -> act -> pointwise 1x1 (small)."""

    def body(b: IRBuilder) -> str:
        channels = _channels(b)
        x = b.activation(activation, b.conv2d(b.input, channels, kernel, groups=channels))
        return b.conv2d(x, channels, 1, init_scale=_SMALL)

    return body


def inverted_residual(expansion: int) -> Body:
    """1x1 expand to C*expansion -> ReLU -> depthwise 3x3 -> ReLU -> 1x1 project (small) (MobileNetV2)."""

    def body(b: IRBuilder) -> str:
        channels = _channels(b)
        wide = channels * expansion
        x = b.activation(RELU, b.conv2d(b.input, wide, 1))
        x = b.activation(RELU, b.conv2d(x, wide, 3, groups=wide))
        return b.conv2d(x, channels, 1, init_scale=_SMALL)

    return body


def grouped_conv(groups: int) -> Body:
    def body(b: IRBuilder) -> str:
        channels = _channels(b)
        x = b.activation(RELU, b.conv2d(b.input, channels, 3, groups=groups))
        return b.conv2d(x, channels, 3, groups=groups, init_scale=_SMALL)

    return body


def norm_conv(num_groups: int | None) -> Body:
    """GroupNorm (or LayerNorm over C, H, W when num_groups is None) -> act -> conv 3x3 (small)."""

    def body(b: IRBuilder) -> str:
        x = b.layer_norm(b.input) if num_groups is None else b.group_norm(b.input, num_groups)
        x = b.activation(RELU if num_groups else GELU, b.conv2d(x, _channels(b), 3))
        return b.conv2d(x, _channels(b), 3, init_scale=_SMALL)

    return body


def _excitation(b: IRBuilder, x: str, ratio: int) -> str:
    """SE gate of `x`, [C, 1, 1]: GAP -> Linear(C/ratio) -> ReLU -> Linear(C) -> sigmoid."""
    channels = b.shape(x)[0]
    squeezed = b.reshape(b.global_avg_pool(x), (channels,))
    hidden = b.activation(RELU, b.linear(squeezed, max(1, channels // ratio)))
    gate = b.activation(SIGMOID, b.linear(hidden, channels))
    return b.reshape(gate, (channels, 1, 1))


def squeeze_excitation(ratio: int) -> Body:
    """x * SE-gate(x), then a per-channel scale starting small (the gate alone starts near 0.5)."""

    def body(b: IRBuilder) -> str:
        return b.scale(b.mul(b.input, _excitation(b, b.input, ratio)), _SMALL)

    return body


def se_conv(ratio: int) -> Body:
    """The SE-ResNet branch: conv 3x3 -> ReLU -> conv 3x3 (small), rescaled by its SE gate."""

    def body(b: IRBuilder) -> str:
        x = b.activation(RELU, b.conv2d(b.input, _channels(b), 3))
        x = b.conv2d(x, _channels(b), 3, init_scale=_SMALL)
        return b.mul(x, _excitation(b, x, ratio))

    return body


def gated_conv() -> Body:
    def body(b: IRBuilder) -> str:
        value = b.conv2d(b.input, _channels(b), 3)
        gate = b.activation(SIGMOID, b.conv2d(b.input, _channels(b), 3))
        return b.conv2d(b.mul(value, gate), _channels(b), 1, init_scale=_SMALL)

    return body


def scale_channels() -> Body:
    def body(b: IRBuilder) -> str:
        return b.scale(b.input, _SMALL)

    return body


def channel_attention(num_heads: int | None) -> Body:
    """Channels as tokens: [C, H, W] -> [C, H*W] -> self-attention -> [C, H, W].

    `num_heads` None takes the most heads (at most MAX_HEADS) that divide H*W.
    """

    def body(b: IRBuilder) -> str:
        channels, height, width = b.shape(b.input)
        area = height * width
        heads = num_heads or max(h for h in range(1, min(area, MAX_HEADS) + 1) if area % h == 0)
        x = b.reshape(b.input, (channels, area))
        x = b.self_attention(x, heads, init_scale=_SMALL)
        return b.reshape(x, (channels, height, width))

    return body


def channels_divisible(divisor: int) -> Requirement:
    def requires(shape: tuple[int, ...]) -> str | None:
        return None if shape[0] % divisor == 0 else f"{shape[0]} channels are not divisible by {divisor}"

    return requires
