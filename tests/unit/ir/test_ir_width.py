"""Width blocks and MAX_POOL2D: shapes, parameters, validation and the eager module."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from esper.ir import (
    IRBuilder,
    build_module,
    example_input,
    growth_kind,
    infer_shapes,
    parameter_count,
    validate_ir,
    width_units,
)
from esper.leyline.v1 import blueprint_pb2
from tests.unit.ir.irs import OPS, expect_invalid, mlp_ir, node, node_index, width_conv_ir


def test_max_pool_shape_and_default_stride() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [3, 7, 9])
    pooled = b.max_pool2d(b.input, 2)
    strided = b.max_pool2d(b.input, 3, stride=1)
    assert b.shape(pooled) == (3, 3, 4)
    assert b.shape(strided) == (3, 5, 7)


def test_max_pool_that_does_not_fit_is_refused() -> None:
    ir = width_conv_ir()
    node(ir, "max_pool2d_0").attributes["kernel_size"].int_value = 9
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'max_pool2d_0')}]", "MAX_POOL2D", "does not fit")


def test_width_block_changes_shape_and_counts_its_parameters() -> None:
    ir = width_conv_ir(channels=2, units=3, out_channels=4)
    validate_ir(ir)
    assert growth_kind(ir) == blueprint_pb2.GROWTH_KIND_WIDTH
    assert list(ir.output_shape.dims) == [4, 4, 4]
    assert infer_shapes(ir)["max_pool2d_0"] == (3, 4, 4)
    # conv 2->3 with bias, conv 3->4 without: the next layer already has its bias.
    assert parameter_count(ir) == 3 * 2 * 9 + 3 + 4 * 3 * 9


def test_width_module_is_conv_relu_pool_conv() -> None:
    ir = width_conv_ir()
    module = build_module(ir)
    x = example_input(ir, batch_size=5)
    weights = dict(module.named_parameters())
    expected = F.conv2d(
        F.max_pool2d(
            F.relu(F.conv2d(x, weights["ops.n_conv2d_0.weight"], weights["ops.n_conv2d_0.bias"], padding=1)), 2
        ),
        weights["ops.n_conv2d_1.weight"],
        padding=1,
    )
    assert torch.equal(module(x), expected)


def test_depth_block_must_keep_its_shape() -> None:
    ir = mlp_ir()
    ir.output_shape.dims[0] = 9
    expect_invalid(ir, "ir.output_shape", "depth block", "input_shape")
    ir.growth_kind = blueprint_pb2.GROWTH_KIND_DEPTH
    expect_invalid(ir, "ir.output_shape", "depth block")


def test_unspecified_growth_kind_reads_as_depth() -> None:
    assert growth_kind(mlp_ir()) == blueprint_pb2.GROWTH_KIND_DEPTH


def test_unknown_growth_kind_is_refused() -> None:
    ir = mlp_ir()
    ir.growth_kind = 7  # type: ignore[assignment]
    expect_invalid(ir, "ir.growth_kind", "unknown growth kind")


def test_width_features_block() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [6], growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH)
    hidden = b.activation(OPS.OP_TYPE_RELU, b.linear(b.input, 2))
    ir = b.build(b.linear(hidden, 4, bias=False))
    assert list(ir.output_shape.dims) == [4]
    assert parameter_count(ir) == 2 * 6 + 2 + 4 * 2
    assert build_module(ir)(example_input(ir, batch_size=3)).shape == (3, 4)


def test_width_units_counts_the_new_units() -> None:
    assert width_units(width_conv_ir(units=3)) == 3
    assert width_units(mlp_ir()) == 0
