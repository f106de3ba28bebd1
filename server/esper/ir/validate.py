"""The one validation of a blueprint IR, and the facts derived from a valid one."""

from __future__ import annotations

from esper.ir import limits
from esper.ir.analysis import Analysis, analyze, check_shape, invalid_ir
from esper.ir.ops import Shape
from esper.leyline.v1 import blueprint_pb2


def validate_ir(ir: blueprint_pb2.BlueprintIR, *, field_prefix: str = "ir") -> None:
    """Raise InvalidArgument (reason INVALID_IR) naming the first problem of `ir`.

    On top of the structural and shape rules of `analyze`, the declared shapes of
    every node must agree with inference, a depth block must map its input shape to
    the same output shape (a width block may change it), and the whole block must
    stay under the parameter limit.
    """
    validated_analysis(ir, field_prefix=field_prefix)


def validated_analysis(ir: blueprint_pb2.BlueprintIR, *, field_prefix: str = "ir") -> Analysis:
    """`validate_ir`, returning the analysis of the valid IR."""
    analysis = analyze(ir, field_prefix=field_prefix)
    input_shape = tuple(ir.input_shape.dims)
    output_shape = tuple(ir.output_shape.dims)
    check_shape(output_shape, f"{field_prefix}.output_shape", "output shape")
    kind = ir.growth_kind
    if kind not in _GROWTH_KINDS:
        raise invalid_ir(f"{field_prefix}.growth_kind", f"unknown growth kind {kind}")
    if kind != blueprint_pb2.GROWTH_KIND_WIDTH and output_shape != input_shape:
        raise invalid_ir(
            f"{field_prefix}.output_shape",
            f"a depth block maps its input to the same shape: output_shape {list(output_shape)} "
            f"!= input_shape {list(input_shape)}",
        )
    _check_declared_shapes(analysis, field_prefix)
    output = analysis.nodes[analysis.output_node_id]
    produced = analysis.shapes[analysis.output_node_id]
    if produced != output_shape:
        raise invalid_ir(
            f"{field_prefix}.nodes[{output.index}]",
            f"shape mismatch: output {output.describe()} produces {list(produced)}, "
            f"the block's output_shape is {list(output_shape)}",
        )
    _check_parameter_budget(analysis, field_prefix)
    return analysis


_GROWTH_KINDS = frozenset(
    {blueprint_pb2.GROWTH_KIND_UNSPECIFIED, blueprint_pb2.GROWTH_KIND_DEPTH, blueprint_pb2.GROWTH_KIND_WIDTH}
)


def infer_shapes(ir: blueprint_pb2.BlueprintIR) -> dict[str, Shape]:
    """Each node's output shape (without batch), inferred from the graph alone."""
    return dict(analyze(ir).shapes)


def parameter_count(ir: blueprint_pb2.BlueprintIR) -> int:
    """Trainable parameters of the block `build_module(ir)` builds."""
    analysis = analyze(ir)
    return sum(analysis.parameters(node_id) for node_id in analysis.order)


def ir_input_shape(ir: blueprint_pb2.BlueprintIR) -> tuple[int, ...]:
    return tuple(int(dim) for dim in ir.input_shape.dims)


def ir_output_shape(ir: blueprint_pb2.BlueprintIR) -> tuple[int, ...]:
    return tuple(int(dim) for dim in ir.output_shape.dims)


def width_units(ir: blueprint_pb2.BlueprintIR) -> int:
    """Units a width block adds to its layer: the features or channels of the first layer reading its input.

    0 for a depth block, or a width block whose input feeds no LINEAR or CONV2D node.
    """
    node = width_input_layer(ir)
    if node is None:
        return 0
    dims = node.output_shape.dims
    return int(dims[0] if node.op_type == blueprint_pb2.OP_TYPE_CONV2D else dims[-1])


def width_input_layer(ir: blueprint_pb2.BlueprintIR) -> blueprint_pb2.IRNode | None:
    """The LINEAR or CONV2D node of a width block that reads its input: the new units; None otherwise."""
    if ir.growth_kind != blueprint_pb2.GROWTH_KIND_WIDTH:
        return None
    readers = {edge.target_node_id for edge in ir.edges if edge.source_node_id == _input_node_id(ir)}
    layers = (blueprint_pb2.OP_TYPE_LINEAR, blueprint_pb2.OP_TYPE_CONV2D)
    return next((node for node in ir.nodes if node.node_id in readers and node.op_type in layers), None)


def _input_node_id(ir: blueprint_pb2.BlueprintIR) -> str:
    return next((node.node_id for node in ir.nodes if node.op_type == blueprint_pb2.OP_TYPE_INPUT), "")


def growth_kind(ir: blueprint_pb2.BlueprintIR) -> int:
    """GROWTH_KIND_DEPTH or GROWTH_KIND_WIDTH; an IR that does not say is a depth block."""
    return ir.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH


def _check_declared_shapes(analysis: Analysis, prefix: str) -> None:
    for node_id in analysis.order:
        info = analysis.nodes[node_id]
        path = f"{prefix}.nodes[{info.index}]"
        declared_inputs = [tuple(shape.dims) for shape in info.node.input_shapes]
        expected_inputs: list[Shape] = [analysis.shapes[source] for source in info.inputs]
        if len(declared_inputs) != len(expected_inputs):
            raise invalid_ir(
                f"{path}.input_shapes",
                f"{info.describe()} declares {len(declared_inputs)} input shape(s) for {len(expected_inputs)} input(s)",
            )
        for port, (declared, expected) in enumerate(zip(declared_inputs, expected_inputs, strict=True)):
            if declared != expected:
                raise invalid_ir(
                    f"{path}.input_shapes[{port}]",
                    f"shape mismatch: {info.describe()} declares input {port} as {list(declared)}, "
                    f"its producer {info.inputs[port]!r} gives {list(expected)}",
                )
        declared_output = tuple(info.node.output_shape.dims)
        if declared_output != analysis.shapes[node_id]:
            raise invalid_ir(
                f"{path}.output_shape",
                f"shape mismatch: {info.describe()} declares output {list(declared_output)}, "
                f"inference gives {list(analysis.shapes[node_id])}",
            )


def _check_parameter_budget(analysis: Analysis, prefix: str) -> None:
    per_node = {node_id: analysis.parameters(node_id) for node_id in analysis.order}
    total = sum(per_node.values())
    if total > limits.MAX_PARAMETERS:
        largest = analysis.nodes[max(per_node, key=lambda n: (per_node[n], n))]
        raise invalid_ir(
            f"{prefix}.nodes[{largest.index}]",
            f"the block has {total} parameters, over the limit of {limits.MAX_PARAMETERS}; "
            f"{largest.describe()} alone has {per_node[largest.node_id]}",
        )
