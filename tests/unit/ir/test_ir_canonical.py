"""The canonical hash depends on the graph only, not on listing or insertion order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from esper.ir import canonical_bytes, ir_sha256, validate_ir
from esper.leyline.v1 import blueprint_pb2
from tests.unit.ir.irs import every_op_ir, gated_ir, mlp_ir, node

_BASE = every_op_ir()


def _reordered(
    ir: blueprint_pb2.BlueprintIR, node_order: list[int], edge_order: list[int], reverse_attributes: bool
) -> blueprint_pb2.BlueprintIR:
    copy = blueprint_pb2.BlueprintIR()
    copy.CopyFrom(ir)
    del copy.nodes[:]
    del copy.edges[:]
    for index in node_order:
        original = ir.nodes[index]
        rebuilt = blueprint_pb2.IRNode(node_id=original.node_id, op_type=original.op_type)
        names = sorted(original.attributes, reverse=reverse_attributes)
        for name in names:
            rebuilt.attributes[name].CopyFrom(original.attributes[name])
        rebuilt.input_shapes.extend(original.input_shapes)
        rebuilt.output_shape.CopyFrom(original.output_shape)
        copy.nodes.append(rebuilt)
    copy.edges.extend(ir.edges[i] for i in edge_order)
    return copy


@settings(max_examples=50, deadline=None)
@given(
    node_order=st.permutations(range(len(_BASE.nodes))),
    edge_order=st.permutations(range(len(_BASE.edges))),
    reverse_attributes=st.booleans(),
)
def test_hash_ignores_order(node_order: list[int], edge_order: list[int], reverse_attributes: bool) -> None:
    shuffled = _reordered(_BASE, node_order, edge_order, reverse_attributes)
    validate_ir(shuffled)
    assert canonical_bytes(shuffled) == canonical_bytes(_BASE)
    assert ir_sha256(shuffled) == ir_sha256(_BASE)


def test_hash_is_hex_sha256_and_stable() -> None:
    digest = ir_sha256(mlp_ir())
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == ir_sha256(mlp_ir())


def test_hash_changes_with_the_graph() -> None:
    base = ir_sha256(mlp_ir())
    assert ir_sha256(mlp_ir(hidden=17)) != base
    assert ir_sha256(mlp_ir(init_seed=1)) != base
    changed = mlp_ir()
    node(changed, "linear_1").attributes["init_scale"].float_value = 0.2
    assert ir_sha256(changed) != base


def test_hash_sees_which_port_an_edge_feeds() -> None:
    ir = gated_ir()
    swapped = blueprint_pb2.BlueprintIR()
    swapped.CopyFrom(ir)
    for edge in swapped.edges:
        if edge.target_node_id == "mul_0":
            edge.target_port = 1 - edge.target_port
    assert ir_sha256(swapped) != ir_sha256(ir)


def test_canonical_bytes_do_not_modify_the_ir() -> None:
    ir = every_op_ir()
    before = ir.SerializeToString(deterministic=True)
    canonical_bytes(ir)
    assert ir.SerializeToString(deterministic=True) == before
