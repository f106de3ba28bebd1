"""Shape inference and parameter counts follow the documented op semantics."""

from __future__ import annotations

import pytest

from esper.ir import IRBuilder, infer_shapes, ir_input_shape, parameter_count
from esper.leyline.v1 import blueprint_pb2
from tests.unit.ir.irs import OPS, every_op_ir, mlp_ir

IMAGE, FEATURES, SEQUENCE = (
    blueprint_pb2.INPUT_KIND_IMAGE,
    blueprint_pb2.INPUT_KIND_FEATURES,
    blueprint_pb2.INPUT_KIND_SEQUENCE,
)


def test_infer_shapes_of_an_mlp() -> None:
    ir = mlp_ir(dim=8, hidden=16)
    assert infer_shapes(ir) == {"input": (8,), "linear_0": (16,), "relu_0": (16,), "linear_1": (8,)}
    assert ir_input_shape(ir) == (8,)


def test_parameter_count_of_an_mlp() -> None:
    assert parameter_count(mlp_ir(dim=8, hidden=16)) == (8 * 16 + 16) + (16 * 8 + 8)


def test_linear_without_bias_and_on_the_last_dim() -> None:
    b = IRBuilder(SEQUENCE, [5, 8])
    x = b.linear(b.input, 3, bias=False)
    assert b.shape(x) == (5, 3)
    ir = b.build(b.linear(x, 8, bias=False))
    assert parameter_count(ir) == 8 * 3 + 3 * 8


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "expected"),
    [(3, 1, 0, (6, 6)), (3, 1, 1, (8, 8)), (3, 2, 1, (4, 4)), (5, 1, 2, (8, 8)), (1, 1, 0, (8, 8))],
)
def test_conv_output_size(kernel: int, stride: int, padding: int, expected: tuple[int, int]) -> None:
    b = IRBuilder(IMAGE, [4, 8, 8])
    x = b.conv2d(b.input, 6, kernel, stride=stride, padding=padding)
    assert b.shape(x) == (6, *expected)


def test_conv_padding_defaults_to_valid() -> None:
    b = IRBuilder(IMAGE, [4, 8, 8])
    x = b.add(OPS.OP_TYPE_CONV2D, b.input, out_channels=4, kernel_size=3)
    assert b.shape(x) == (4, 6, 6)


def test_depthwise_conv_parameters() -> None:
    b = IRBuilder(IMAGE, [8, 5, 5])
    ir = b.build(b.conv2d(b.input, 8, 3, groups=8))
    assert parameter_count(ir) == 8 * 1 * 3 * 3 + 8


def test_norm_parameters_do_not_depend_on_spatial_size() -> None:
    counts = []
    for size in (4, 9):
        b = IRBuilder(IMAGE, [6, size, size])
        counts.append(parameter_count(b.build(b.layer_norm(b.group_norm(b.input, 3)))))
    assert counts == [4 * 6, 4 * 6]


def test_layer_norm_on_features_and_tokens_uses_the_last_dim() -> None:
    for kind, shape in ((FEATURES, [10]), (SEQUENCE, [3, 10])):
        b = IRBuilder(kind, shape)
        assert parameter_count(b.build(b.layer_norm(b.input))) == 20


def test_mul_broadcasts_a_channel_gate() -> None:
    b = IRBuilder(IMAGE, [4, 6, 6])
    gate = b.global_avg_pool(b.input)
    assert b.shape(gate) == (4, 1, 1)
    assert b.shape(b.mul(b.input, gate)) == (4, 6, 6)


def test_self_attention_parameters() -> None:
    b = IRBuilder(SEQUENCE, [7, 12])
    assert parameter_count(b.build(b.self_attention(b.input, 3))) == 4 * 12 * 12 + 4 * 12


def test_scale_parameters_per_channel() -> None:
    for kind, shape, expected in ((FEATURES, [10], 10), (SEQUENCE, [3, 10], 10), (IMAGE, [5, 4, 4], 5)):
        b = IRBuilder(kind, shape)
        assert parameter_count(b.build(b.scale(b.input))) == expected


def test_every_op_ir_shapes() -> None:
    shapes = infer_shapes(every_op_ir())
    assert shapes["global_avg_pool_0"] == (4, 1, 1)
    assert shapes["reshape_2"] == (4, 36)
    assert shapes["self_attention_0"] == (4, 36)
    assert shapes["reshape_3"] == (4, 6, 6)
