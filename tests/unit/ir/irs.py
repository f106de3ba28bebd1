"""Small blueprint IRs for the IR tests, and a helper to expect INVALID_IR."""

from __future__ import annotations

import pytest

from esper.errors import InvalidArgument
from esper.ir import IRBuilder, validate_ir
from esper.leyline.v1 import blueprint_pb2

OPS = blueprint_pb2.OpType


def mlp_ir(dim: int = 8, hidden: int = 16, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """input -> linear_0 -> relu_0 -> linear_1, on features [dim]."""
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [dim], init_seed=init_seed)
    x = b.activation(OPS.OP_TYPE_RELU, b.linear(b.input, hidden))
    return b.build(b.linear(x, dim, init_scale=0.1))


def gated_ir(dim: int = 8) -> blueprint_pb2.BlueprintIR:
    """A two-input op: input -> linear_0, input -> linear_1 -> sigmoid_0, mul_0(linear_0, sigmoid_0)."""
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [dim])
    gate = b.activation(OPS.OP_TYPE_SIGMOID, b.linear(b.input, dim))
    return b.build(b.mul(b.linear(b.input, dim), gate))


def every_op_ir(init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """An image block that uses each of the 16 op types at least once."""
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [4, 6, 6], init_seed=init_seed)
    x = b.activation(OPS.OP_TYPE_RELU, b.group_norm(b.conv2d(b.input, 4, 3), 2))
    x = b.activation(OPS.OP_TYPE_SILU, b.activation(OPS.OP_TYPE_GELU, b.layer_norm(x)))
    squeezed = b.reshape(b.global_avg_pool(x), (4,))
    gate = b.reshape(b.activation(OPS.OP_TYPE_SIGMOID, b.linear(squeezed, 4)), (4, 1, 1))
    x = b.add_(b.mul(x, gate), b.input)
    tokens = b.self_attention(b.reshape(x, (4, 36)), 2)
    x = b.scale(b.activation(OPS.OP_TYPE_TANH, tokens), 0.5)
    return b.build(b.reshape(x, (4, 6, 6)))


def node_index(ir: blueprint_pb2.BlueprintIR, node_id: str) -> int:
    return next(i for i, node in enumerate(ir.nodes) if node.node_id == node_id)


def node(ir: blueprint_pb2.BlueprintIR, node_id: str) -> blueprint_pb2.IRNode:
    return ir.nodes[node_index(ir, node_id)]


def expect_invalid(ir: blueprint_pb2.BlueprintIR, field: str, *message_parts: str) -> InvalidArgument:
    """validate_ir must refuse `ir` with INVALID_IR, one violation on a field starting with `field`."""
    with pytest.raises(InvalidArgument) as caught:
        validate_ir(ir)
    error = caught.value
    assert error.reason == "INVALID_IR"
    assert len(error.violations) == 1
    violation = error.violations[0]
    assert violation.field.startswith(field), violation.field
    for part in message_parts:
        assert part in violation.description, violation.description
    return error


def width_conv_ir(channels: int = 2, units: int = 3, out_channels: int = 4) -> blueprint_pb2.BlueprintIR:
    """A width block: [channels, 8, 8] -> conv 3x3 -> relu -> max pool 2 -> conv 3x3 -> [out_channels, 4, 4]."""
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [channels, 8, 8], growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH)
    x = b.max_pool2d(b.activation(OPS.OP_TYPE_RELU, b.conv2d(b.input, units, 3)), 2)
    return b.build(b.conv2d(x, out_channels, 3, bias=False))
