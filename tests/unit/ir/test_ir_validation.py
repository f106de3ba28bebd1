"""validate_ir refuses every class of malformed IR with INVALID_IR, naming the node."""

from __future__ import annotations

import pytest

from esper.errors import InvalidArgument
from esper.ir import IRBuilder, validate_ir
from esper.ir.limits import MAX_NODES
from esper.leyline.v1 import blueprint_pb2
from tests.unit.ir.irs import OPS, every_op_ir, expect_invalid, gated_ir, mlp_ir, node, node_index


def test_valid_irs_pass() -> None:
    for ir in (mlp_ir(), gated_ir(), every_op_ir()):
        validate_ir(ir)


@pytest.mark.parametrize("op_type", [0, 99])
def test_unknown_or_unspecified_op(op_type: int) -> None:
    ir = mlp_ir()
    node(ir, "relu_0").op_type = op_type  # type: ignore[assignment]
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'relu_0')}].op_type", "'relu_0'")


def test_missing_attribute() -> None:
    ir = mlp_ir()
    del node(ir, "linear_1").attributes["out_features"]
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'linear_1')}].attributes.out_features", "'linear_1'", "missing")


def test_unknown_attribute() -> None:
    ir = mlp_ir()
    node(ir, "relu_0").attributes["slope"].float_value = 0.1
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'relu_0')}].attributes.slope", "'relu_0'", "unknown attribute")


def test_ill_typed_attribute() -> None:
    ir = mlp_ir()
    node(ir, "linear_0").attributes["out_features"].float_value = 16.0
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'linear_0')}].attributes.out_features", "'linear_0'", "int_value")


def test_out_of_range_attribute() -> None:
    ir = mlp_ir()
    node(ir, "linear_0").attributes["bias"].int_value = 2
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'linear_0')}].attributes.bias", "'linear_0'")


def test_duplicate_node_id() -> None:
    ir = mlp_ir()
    node(ir, "relu_0").node_id = "linear_0"
    expect_invalid(ir, "ir.nodes[", "duplicate node id 'linear_0'")


@pytest.mark.parametrize("bad_id", ["", "Linear", "has-dash", "a" * 65])
def test_bad_node_id_syntax(bad_id: str) -> None:
    ir = mlp_ir()
    index = node_index(ir, "relu_0")
    ir.nodes[index].node_id = bad_id
    expect_invalid(ir, f"ir.nodes[{index}].node_id", repr(bad_id))


def test_edge_to_unknown_node() -> None:
    ir = mlp_ir()
    ir.edges[1].source_node_id = "ghost"
    expect_invalid(ir, "ir.edges[1].source_node_id", "'ghost'")


def test_edge_to_missing_port() -> None:
    ir = mlp_ir()
    ir.edges.add(source_node_id="input", target_node_id="relu_0", target_port=1)
    expect_invalid(ir, f"ir.edges[{len(ir.edges) - 1}].target_port", "'relu_0'", "port 1")


def test_port_fed_twice() -> None:
    ir = gated_ir()
    ir.edges.add(source_node_id="input", target_node_id="mul_0", target_port=0)
    expect_invalid(ir, f"ir.edges[{len(ir.edges) - 1}].target_port", "'mul_0'", "fed twice")


def test_wrong_number_of_inputs() -> None:
    ir = gated_ir()
    keep = [e for e in ir.edges if not (e.target_node_id == "mul_0" and e.target_port == 1)]
    del ir.edges[:]
    ir.edges.extend(keep)
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'mul_0')}]", "'mul_0'", "takes 2 input(s), got 1")


def test_cycle() -> None:
    # input -> add_0(port 0); add_0 -> relu_0 -> add_0(port 1): a loop through add_0.
    ir = blueprint_pb2.BlueprintIR(input_kind=blueprint_pb2.INPUT_KIND_FEATURES, output_node_id="relu_0")
    ir.input_shape.dims.append(4)
    ir.output_shape.dims.append(4)
    for node_id, op in (
        ("input", OPS.OP_TYPE_INPUT),
        ("add_0", OPS.OP_TYPE_ADD),
        ("relu_0", OPS.OP_TYPE_RELU),
    ):
        ir.nodes.add(node_id=node_id, op_type=op)
    ir.edges.add(source_node_id="input", target_node_id="add_0", target_port=0)
    ir.edges.add(source_node_id="relu_0", target_node_id="add_0", target_port=1)
    ir.edges.add(source_node_id="add_0", target_node_id="relu_0", target_port=0)
    error = expect_invalid(ir, "ir.nodes[", "cycle")
    assert "add_0" in error.violations[0].description and "relu_0" in error.violations[0].description


def test_no_input_node() -> None:
    ir = mlp_ir()
    node(ir, "input").op_type = OPS.OP_TYPE_RELU
    expect_invalid(ir, "ir.nodes", "exactly one INPUT")


def test_two_input_nodes() -> None:
    ir = mlp_ir()
    extra = ir.nodes.add(node_id="input_2", op_type=OPS.OP_TYPE_INPUT)
    extra.output_shape.dims.append(8)
    expect_invalid(ir, f"ir.nodes[{len(ir.nodes) - 1}]", "exactly one", "'input_2'")


def test_unknown_output_node() -> None:
    ir = mlp_ir()
    ir.output_node_id = "nowhere"
    expect_invalid(ir, "ir.output_node_id", "'nowhere'")


def test_node_unreachable_from_input() -> None:
    ir = mlp_ir()
    ir.nodes.add(node_id="orphan", op_type=OPS.OP_TYPE_RELU)
    expect_invalid(ir, f"ir.nodes[{len(ir.nodes) - 1}]", "'orphan'", "not reachable")


def test_node_that_does_not_feed_the_output() -> None:
    ir = mlp_ir()
    dead = ir.nodes.add(node_id="dead_end", op_type=OPS.OP_TYPE_TANH)
    dead.input_shapes.add().dims.append(8)
    dead.output_shape.dims.append(8)
    ir.edges.add(source_node_id="input", target_node_id="dead_end", target_port=0)
    expect_invalid(ir, f"ir.nodes[{len(ir.nodes) - 1}]", "'dead_end'", "does not feed the output")


def test_declared_output_shape_mismatch() -> None:
    ir = mlp_ir()
    node(ir, "relu_0").output_shape.dims[0] = 15
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'relu_0')}].output_shape", "'relu_0'", "shape mismatch")


def test_declared_input_shape_mismatch() -> None:
    ir = mlp_ir()
    node(ir, "linear_1").input_shapes[0].dims[0] = 15
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'linear_1')}].input_shapes[0]", "'linear_1'", "shape mismatch")


def test_inferred_shape_mismatch_between_inputs() -> None:
    ir = gated_ir()
    node(ir, "linear_0").attributes["out_features"].int_value = 4
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'mul_0')}]", "'mul_0'", "broadcast")


def test_block_output_shape_differs_from_input() -> None:
    ir = mlp_ir()
    ir.output_shape.dims[0] = 9
    expect_invalid(ir, "ir.output_shape", "input_shape")


def test_output_node_shape_differs_from_block_shape() -> None:
    ir = mlp_ir(dim=8, hidden=16)
    del ir.nodes[node_index(ir, "linear_1")]
    keep = [e for e in ir.edges if e.target_node_id != "linear_1"]
    del ir.edges[:]
    ir.edges.extend(keep)
    ir.output_node_id = "relu_0"
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'relu_0')}]", "'relu_0'", "shape mismatch", "[16]")


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        (blueprint_pb2.INPUT_KIND_FEATURES, [8, 8]),
        (blueprint_pb2.INPUT_KIND_IMAGE, [8, 8]),
        (blueprint_pb2.INPUT_KIND_SEQUENCE, [8]),
        (blueprint_pb2.INPUT_KIND_UNSPECIFIED, [8]),
    ],
)
def test_input_kind_inconsistent_with_rank(kind: int, shape: list[int]) -> None:
    ir = mlp_ir()
    ir.input_kind = kind  # type: ignore[assignment]
    del ir.input_shape.dims[:]
    ir.input_shape.dims.extend(shape)
    field = "ir.input_kind" if kind == blueprint_pb2.INPUT_KIND_UNSPECIFIED else "ir.input_shape"
    expect_invalid(ir, field)


@pytest.mark.parametrize("dim", [0, 65537])
def test_absurd_dim(dim: int) -> None:
    ir = mlp_ir()
    ir.input_shape.dims[0] = dim
    expect_invalid(ir, "ir.input_shape", str(dim))


def test_absurd_hidden_width() -> None:
    ir = mlp_ir()
    node(ir, "linear_0").attributes["out_features"].int_value = 70000
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'linear_0')}].attributes.out_features", "'linear_0'")


def test_too_many_nodes() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [4])
    x = b.input
    for _ in range(MAX_NODES):
        x = b.activation(OPS.OP_TYPE_RELU, x)
    with pytest.raises(InvalidArgument) as caught:
        b.build(x)
    assert caught.value.reason == "INVALID_IR"
    assert caught.value.violations[0].field == "ir.nodes"
    assert str(MAX_NODES) in caught.value.violations[0].description


def test_too_many_parameters_names_the_largest_node() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [1024])
    wide = b.linear(b.input, 65536)
    with pytest.raises(InvalidArgument) as caught:
        b.build(b.linear(wide, 1024))
    violation = caught.value.violations[0]
    assert caught.value.reason == "INVALID_IR"
    assert violation.field in ("ir.nodes[1]", "ir.nodes[2]")
    assert "parameters" in violation.description and "linear_" in violation.description


def test_activation_too_large() -> None:
    # [65536] per sample is allowed; 128 tokens of 65536 features is not.
    b = IRBuilder(blueprint_pb2.INPUT_KIND_SEQUENCE, [128, 4])
    with pytest.raises(InvalidArgument) as caught:
        b.linear(b.input, 65536)
    assert caught.value.reason == "INVALID_IR"
    assert caught.value.violations[0].field == "ir.nodes[1]"
    assert "'linear_0'" in caught.value.violations[0].description
    assert "elements" in caught.value.violations[0].description


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"kernel_size": 17}, "kernel_size"),
        ({"groups": 3}, "groups"),
        ({"padding": 3, "kernel_size": 3}, "padding"),
        ({"stride": 9}, "stride"),
    ],
)
def test_bad_convolution(attributes: dict[str, int], message: str) -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [4, 8, 8])
    ir = b.build(b.conv2d(b.input, 4, 3))
    conv = node(ir, "conv2d_0")
    for name, value in attributes.items():
        conv.attributes[name].int_value = value
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'conv2d_0')}]", "'conv2d_0'", message)


def test_conv_kernel_larger_than_the_map() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [4, 4, 4])
    with pytest.raises(InvalidArgument, match="does not fit"):
        b.conv2d(b.input, 4, 7, padding=0)


def test_attention_heads_must_divide_dim() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_SEQUENCE, [8, 12])
    ir = b.build(b.self_attention(b.input, 4))
    node(ir, "self_attention_0").attributes["num_heads"].int_value = 5
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'self_attention_0')}]", "'self_attention_0'", "num_heads 5")


def test_group_norm_groups_must_divide_channels() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [6, 4, 4])
    ir = b.build(b.group_norm(b.input, 3))
    node(ir, "group_norm_0").attributes["num_groups"].int_value = 4
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'group_norm_0')}]", "'group_norm_0'", "num_groups 4")


def test_reshape_must_keep_the_element_count() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [12])
    ir = b.build(b.reshape(b.reshape(b.input, (3, 4)), (12,)))
    node(ir, "reshape_0").attributes["shape"].ints_value.values[:] = [5, 4]
    expect_invalid(ir, f"ir.nodes[{node_index(ir, 'reshape_0')}]", "'reshape_0'", "element count")


def test_op_rank_rules() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [16])
    for op in (OPS.OP_TYPE_CONV2D, OPS.OP_TYPE_GLOBAL_AVG_POOL, OPS.OP_TYPE_SELF_ATTENTION):
        attrs = {"out_channels": 4, "kernel_size": 1} if op == OPS.OP_TYPE_CONV2D else {}
        if op == OPS.OP_TYPE_SELF_ATTENTION:
            attrs = {"num_heads": 1}
        with pytest.raises(InvalidArgument, match="rank"):
            b.add(op, b.input, **attrs)


def test_field_prefix_is_used() -> None:
    ir = mlp_ir()
    node(ir, "relu_0").op_type = 0  # type: ignore[assignment]
    with pytest.raises(InvalidArgument) as caught:
        validate_ir(ir, field_prefix="blueprint.ir")
    assert caught.value.violations[0].field.startswith("blueprint.ir.nodes[")
