"""The semantics of every op: arity, attributes, shape rule and parameter count.

Shapes never include the batch dimension. The precise rules, which the eager
builder (`esper.ir.module`) follows exactly:

- INPUT: no inputs; its output is the IR's `input_shape`.
- LINEAR: acts on the last dim of any rank: [..., d] -> [..., out_features].
  `bias` (0/1, default 1). Parameters d*out + out*bias.
- CONV2D: [C, H, W] -> [out_channels, H', W'] with H' = (H + 2p - k) // s + 1.
  `padding` defaults to 0 ("valid"); a 'same' conv must say padding = k // 2.
  `groups` (default 1) must divide both C and out_channels; groups = C is depthwise.
- LAYER_NORM: rank 1 and 2 normalize the last dim with an affine weight and bias
  of that size; rank 3 ([C, H, W]) normalizes over all of C, H and W with a
  per-channel affine (exactly GroupNorm with one group), so its parameter count
  does not depend on the spatial size.
- GROUP_NORM: [C, H, W]; `num_groups` divides C; per-channel affine.
- RELU, GELU (exact erf form), SILU, TANH, SIGMOID: element-wise, any rank.
- ADD: two inputs of the same shape.
- MUL: the second input has the first's rank and each of its dims equals the
  first's or is 1 (so a [C, 1, 1] gate scales a [C, H, W] map); output = first shape.
- GLOBAL_AVG_POOL: [C, H, W] -> [C, 1, 1].
- RESHAPE: `shape` (ints, each >= 1, no -1) with the same element count.
- SELF_ATTENTION: [T, D] -> [T, D], `num_heads` divides D; a fused q/k/v
  projection D -> 3D and an output projection D -> D, both with bias (parameters
  4*D*D + 4*D), scaled dot-product attention per head; `causal` (0/1, default 0)
  masks later tokens, so token t reads tokens 0..t only.
- SCALE: a learnable per-channel factor on the last dim (rank 1, 2) or on C
  (rank 3), initialized to `init_value` (default 1).
- MAX_POOL2D: [C, H, W] -> [C, H', W'] with H' = (H - k) // s + 1, no padding;
  `stride` defaults to `kernel_size` (PyTorch's MaxPool2d(k) when 0).

LINEAR, CONV2D and SELF_ATTENTION (its output projection) accept `init_scale`
(default 1): the default initialization is multiplied by it, which lets a block
start close to zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from esper.ir import limits
from esper.ir.attributes import Attributes, AttributeSpec, AttrKind
from esper.leyline.v1 import blueprint_pb2

Shape = tuple[int, ...]
ShapeRule = Callable[[Sequence[Shape], Attributes], Shape]
ParameterRule = Callable[[Sequence[Shape], Attributes], int]


class OpError(Exception):
    """A node's input shapes or attributes break its op's rule."""


def _no_parameters(shapes: Sequence[Shape], attrs: Attributes) -> int:
    return 0


@dataclass(frozen=True)
class OpSpec:
    """What one OpType accepts and produces."""

    op_type: int
    name: str
    arity: int
    attributes: tuple[AttributeSpec, ...]
    infer: ShapeRule
    parameters: ParameterRule = _no_parameters


def op_name(op_type: int) -> str:
    """The enum value's name without its prefix, or the raw number if unknown."""
    try:
        return str(blueprint_pb2.OpType.Name(op_type)).removeprefix("OP_TYPE_")
    except ValueError:
        return str(op_type)


def _require_rank(shape: Shape, ranks: Sequence[int], what: str) -> None:
    if len(shape) not in ranks:
        raise OpError(f"{what} needs an input of rank {' or '.join(map(str, ranks))}, got {list(shape)}")


_BIAS = AttributeSpec("bias", AttrKind.INT, default=1, minimum=0, maximum=1)
_INIT_SCALE = AttributeSpec(
    "init_scale", AttrKind.FLOAT, default=1.0, minimum=0.0, maximum=limits.MAX_INIT_SCALE, positive=True
)
_EPS = AttributeSpec("eps", AttrKind.FLOAT, default=1e-5, minimum=0.0, maximum=limits.MAX_EPS, positive=True)
_ANY_RANK = tuple(range(1, limits.MAX_RANK + 1))


def _infer_input(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    raise OpError("INPUT takes its shape from the IR's input_shape")


def _same_shape(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    return shapes[0]


def _infer_linear(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], _ANY_RANK, "LINEAR")
    return (*shapes[0][:-1], attrs.get_int("out_features"))


def _linear_parameters(shapes: Sequence[Shape], attrs: Attributes) -> int:
    out = attrs.get_int("out_features")
    return shapes[0][-1] * out + out * attrs.get_int("bias")


def _infer_conv2d(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (3,), "CONV2D")
    channels, height, width = shapes[0]
    out, kernel = attrs.get_int("out_channels"), attrs.get_int("kernel_size")
    stride, padding, groups = attrs.get_int("stride"), attrs.get_int("padding"), attrs.get_int("groups")
    if padding >= kernel:
        raise OpError(f"CONV2D padding {padding} must be smaller than kernel_size {kernel}")
    if channels % groups or out % groups:
        raise OpError(f"CONV2D groups {groups} must divide in channels {channels} and out_channels {out}")
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    if out_h < 1 or out_w < 1:
        raise OpError(f"CONV2D kernel {kernel} with padding {padding} does not fit a {height}x{width} map")
    return (out, out_h, out_w)


def _conv2d_parameters(shapes: Sequence[Shape], attrs: Attributes) -> int:
    out, kernel = attrs.get_int("out_channels"), attrs.get_int("kernel_size")
    per_group = shapes[0][0] // attrs.get_int("groups")
    return out * per_group * kernel * kernel + out * attrs.get_int("bias")


def _infer_layer_norm(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (1, 2, 3), "LAYER_NORM")
    return shapes[0]


def _norm_parameters(shapes: Sequence[Shape], attrs: Attributes) -> int:
    # Rank 3 has a per-channel affine; rank 1 and 2 one per feature of the last dim.
    shape = shapes[0]
    return 2 * (shape[0] if len(shape) == 3 else shape[-1])


def _infer_group_norm(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (3,), "GROUP_NORM")
    groups = attrs.get_int("num_groups")
    if shapes[0][0] % groups:
        raise OpError(f"GROUP_NORM num_groups {groups} must divide channels {shapes[0][0]}")
    return shapes[0]


def _infer_add(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    if shapes[0] != shapes[1]:
        raise OpError(f"ADD needs two inputs of the same shape, got {list(shapes[0])} and {list(shapes[1])}")
    return shapes[0]


def _infer_mul(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    first, second = shapes
    if len(first) != len(second) or any(b not in (a, 1) for a, b in zip(first, second, strict=True)):
        raise OpError(f"MUL's second input {list(second)} must equal or broadcast (dims of 1) to {list(first)}")
    return first


def _infer_global_avg_pool(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (3,), "GLOBAL_AVG_POOL")
    return (shapes[0][0], 1, 1)


def _infer_reshape(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    target = attrs.get_ints("shape")
    if math.prod(target) != math.prod(shapes[0]):
        raise OpError(f"RESHAPE to {list(target)} changes the element count of {list(shapes[0])}")
    return target


def _infer_self_attention(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (2,), "SELF_ATTENTION")
    tokens, dim = shapes[0]
    heads = attrs.get_int("num_heads")
    if dim % heads:
        raise OpError(f"SELF_ATTENTION num_heads {heads} must divide the model dim {dim}")
    if tokens > limits.MAX_SEQUENCE_LENGTH:
        raise OpError(f"SELF_ATTENTION sequence length {tokens} exceeds {limits.MAX_SEQUENCE_LENGTH}")
    return shapes[0]


def _self_attention_parameters(shapes: Sequence[Shape], attrs: Attributes) -> int:
    dim = shapes[0][-1]
    return 4 * dim * dim + 4 * dim


def _infer_scale(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (1, 2, 3), "SCALE")
    return shapes[0]


def _scale_parameters(shapes: Sequence[Shape], attrs: Attributes) -> int:
    shape = shapes[0]
    return shape[0] if len(shape) == 3 else shape[-1]


def _infer_max_pool2d(shapes: Sequence[Shape], attrs: Attributes) -> Shape:
    _require_rank(shapes[0], (3,), "MAX_POOL2D")
    channels, height, width = shapes[0]
    kernel = attrs.get_int("kernel_size")
    stride = attrs.get_int("stride") or kernel
    if kernel > height or kernel > width:
        raise OpError(f"MAX_POOL2D kernel {kernel} does not fit a {height}x{width} map")
    return (channels, (height - kernel) // stride + 1, (width - kernel) // stride + 1)


def _size(
    name: str, maximum: int = limits.MAX_DIM, *, required: bool = True, default: int | None = None
) -> AttributeSpec:
    return AttributeSpec(name, AttrKind.INT, required=required, default=default, minimum=1, maximum=maximum)


def _activation(op_type: int, name: str) -> OpSpec:
    return OpSpec(op_type, name, 1, (), _same_shape)


_OPS = blueprint_pb2.OpType
OP_SPECS: dict[int, OpSpec] = {
    spec.op_type: spec
    for spec in (
        OpSpec(_OPS.OP_TYPE_INPUT, "input", 0, (), _infer_input),
        OpSpec(
            _OPS.OP_TYPE_LINEAR,
            "linear",
            1,
            (_size("out_features"), _BIAS, _INIT_SCALE),
            _infer_linear,
            _linear_parameters,
        ),
        OpSpec(
            _OPS.OP_TYPE_CONV2D,
            "conv2d",
            1,
            (
                _size("out_channels"),
                _size("kernel_size", limits.MAX_KERNEL_SIZE),
                _size("stride", limits.MAX_STRIDE, required=False, default=1),
                AttributeSpec("padding", AttrKind.INT, default=0, minimum=0, maximum=limits.MAX_KERNEL_SIZE - 1),
                _size("groups", required=False, default=1),
                _BIAS,
                _INIT_SCALE,
            ),
            _infer_conv2d,
            _conv2d_parameters,
        ),
        OpSpec(_OPS.OP_TYPE_LAYER_NORM, "layer_norm", 1, (_EPS,), _infer_layer_norm, _norm_parameters),
        OpSpec(
            _OPS.OP_TYPE_GROUP_NORM,
            "group_norm",
            1,
            (_size("num_groups"), _EPS),
            _infer_group_norm,
            _norm_parameters,
        ),
        _activation(_OPS.OP_TYPE_RELU, "relu"),
        _activation(_OPS.OP_TYPE_GELU, "gelu"),
        _activation(_OPS.OP_TYPE_SILU, "silu"),
        _activation(_OPS.OP_TYPE_TANH, "tanh"),
        _activation(_OPS.OP_TYPE_SIGMOID, "sigmoid"),
        OpSpec(_OPS.OP_TYPE_ADD, "add", 2, (), _infer_add),
        OpSpec(_OPS.OP_TYPE_MUL, "mul", 2, (), _infer_mul),
        OpSpec(_OPS.OP_TYPE_GLOBAL_AVG_POOL, "global_avg_pool", 1, (), _infer_global_avg_pool),
        OpSpec(
            _OPS.OP_TYPE_RESHAPE,
            "reshape",
            1,
            (
                AttributeSpec(
                    "shape",
                    AttrKind.INTS,
                    required=True,
                    minimum=1,
                    maximum=limits.MAX_DIM,
                    max_length=limits.MAX_RANK,
                ),
            ),
            _infer_reshape,
        ),
        OpSpec(
            _OPS.OP_TYPE_SELF_ATTENTION,
            "self_attention",
            1,
            (
                _size("num_heads", limits.MAX_HEADS),
                _INIT_SCALE,
                AttributeSpec("causal", AttrKind.INT, default=0, minimum=0, maximum=1),
            ),
            _infer_self_attention,
            _self_attention_parameters,
        ),
        OpSpec(
            _OPS.OP_TYPE_SCALE,
            "scale",
            1,
            (
                AttributeSpec(
                    "init_value",
                    AttrKind.FLOAT,
                    default=1.0,
                    minimum=-limits.MAX_INIT_SCALE,
                    maximum=limits.MAX_INIT_SCALE,
                ),
            ),
            _infer_scale,
            _scale_parameters,
        ),
        OpSpec(
            _OPS.OP_TYPE_MAX_POOL2D,
            "max_pool2d",
            1,
            (
                _size("kernel_size", limits.MAX_KERNEL_SIZE),
                # 0 (the default) means stride = kernel_size, as nn.MaxPool2d(k) does.
                AttributeSpec("stride", AttrKind.INT, default=0, minimum=0, maximum=limits.MAX_STRIDE),
            ),
            _infer_max_pool2d,
        ),
    )
}
