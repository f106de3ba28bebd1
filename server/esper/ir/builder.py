"""Build a valid BlueprintIR in code, one op at a time, with every shape filled in."""

from __future__ import annotations

from collections.abc import Sequence

from esper.ir.analysis import check_shape, invalid_ir
from esper.ir.attributes import AttributeProblem, AttrKind, resolve_attributes
from esper.ir.ops import OP_SPECS, OpError, Shape
from esper.ir.validate import validate_ir
from esper.leyline.v1 import blueprint_pb2

AttrArg = int | float | Sequence[int]
_OPS = blueprint_pb2.OpType


class IRBuilder:
    """Appends nodes, inferring each output shape as it goes, and emits a validated IR.

    Node ids default to `<op>_<n>`. An op that does not fit its input raises
    InvalidArgument (INVALID_IR) at once, naming the node about to be added.
    """

    def __init__(
        self,
        input_kind: int,
        input_shape: Sequence[int],
        *,
        init_seed: int = 0,
        input_node_id: str = "input",
        growth_kind: int = blueprint_pb2.GROWTH_KIND_UNSPECIFIED,
    ) -> None:
        self._ir = blueprint_pb2.BlueprintIR(
            input_kind=input_kind,  # type: ignore[arg-type]
            init_seed=init_seed,
            growth_kind=growth_kind,  # type: ignore[arg-type]
        )
        self._ir.input_shape.dims.extend(input_shape)
        self._shapes: dict[str, Shape] = {}
        self._counts: dict[str, int] = {}
        node = self._ir.nodes.add(node_id=input_node_id, op_type=_OPS.OP_TYPE_INPUT)
        node.output_shape.dims.extend(input_shape)
        self._shapes[input_node_id] = tuple(input_shape)
        self.input = input_node_id

    def shape(self, node_id: str) -> Shape:
        return self._shapes[node_id]

    def add(self, op_type: int, *inputs: str, node_id: str | None = None, **attributes: AttrArg) -> str:
        spec = OP_SPECS[op_type]
        if node_id is None:
            node_id = f"{spec.name}_{self._counts.get(spec.name, 0)}"
            self._counts[spec.name] = self._counts.get(spec.name, 0) + 1
        path = f"ir.nodes[{len(self._ir.nodes)}]"
        node = blueprint_pb2.IRNode(node_id=node_id, op_type=op_type)  # type: ignore[arg-type]
        kinds = {attr.name: attr.kind for attr in spec.attributes}
        for name, value in attributes.items():
            _set_attribute(node.attributes[name], kinds.get(name, AttrKind.INT), value)
        input_shapes = [self._shapes[source] for source in inputs]
        try:
            shape = spec.infer(input_shapes, resolve_attributes(spec.attributes, node.attributes))
        except (OpError, AttributeProblem) as error:
            raise invalid_ir(path, f"node {node_id!r} ({spec.name}): {error}") from None
        check_shape(shape, path, f"node {node_id!r} ({spec.name}) output shape")
        for port, (source, source_shape) in enumerate(zip(inputs, input_shapes, strict=True)):
            node.input_shapes.add().dims.extend(source_shape)
            self._ir.edges.add(source_node_id=source, target_node_id=node_id, target_port=port)
        node.output_shape.dims.extend(shape)
        self._ir.nodes.append(node)
        self._shapes[node_id] = shape
        return node_id

    def build(self, output: str) -> blueprint_pb2.BlueprintIR:
        """The IR with `output` as its output node; raises InvalidArgument if it is not valid."""
        ir = blueprint_pb2.BlueprintIR()
        ir.CopyFrom(self._ir)
        ir.output_node_id = output
        ir.output_shape.dims.extend(self._shapes[output])
        validate_ir(ir)
        return ir

    # Shortcuts for the ops blocks are made of.

    def linear(
        self,
        x: str,
        out_features: int,
        *,
        bias: bool = True,
        init_scale: float = 1.0,
        node_id: str | None = None,
    ) -> str:
        return self.add(
            _OPS.OP_TYPE_LINEAR,
            x,
            node_id=node_id,
            out_features=out_features,
            bias=int(bias),
            init_scale=init_scale,
        )

    def conv2d(
        self,
        x: str,
        out_channels: int,
        kernel_size: int,
        *,
        padding: int | None = None,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
        init_scale: float = 1.0,
    ) -> str:
        """A convolution; `padding` defaults to kernel_size // 2, which keeps H and W at stride 1."""
        return self.add(
            _OPS.OP_TYPE_CONV2D,
            x,
            out_channels=out_channels,
            kernel_size=kernel_size,
            padding=kernel_size // 2 if padding is None else padding,
            stride=stride,
            groups=groups,
            bias=int(bias),
            init_scale=init_scale,
        )

    def activation(self, op_type: int, x: str) -> str:
        return self.add(op_type, x)

    def layer_norm(self, x: str) -> str:
        return self.add(_OPS.OP_TYPE_LAYER_NORM, x)

    def group_norm(self, x: str, num_groups: int) -> str:
        return self.add(_OPS.OP_TYPE_GROUP_NORM, x, num_groups=num_groups)

    def add_(self, a: str, b: str) -> str:
        return self.add(_OPS.OP_TYPE_ADD, a, b)

    def mul(self, a: str, b: str) -> str:
        return self.add(_OPS.OP_TYPE_MUL, a, b)

    def global_avg_pool(self, x: str) -> str:
        return self.add(_OPS.OP_TYPE_GLOBAL_AVG_POOL, x)

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.add(_OPS.OP_TYPE_RESHAPE, x, shape=list(shape))

    def self_attention(self, x: str, num_heads: int, *, init_scale: float = 1.0, causal: bool = False) -> str:
        if causal:
            return self.add(_OPS.OP_TYPE_SELF_ATTENTION, x, num_heads=num_heads, init_scale=init_scale, causal=1)
        return self.add(_OPS.OP_TYPE_SELF_ATTENTION, x, num_heads=num_heads, init_scale=init_scale)

    def scale(self, x: str, init_value: float = 1.0) -> str:
        return self.add(_OPS.OP_TYPE_SCALE, x, init_value=init_value)

    def max_pool2d(self, x: str, kernel_size: int, *, stride: int = 0) -> str:
        """Max pooling; `stride` 0 means kernel_size."""
        return self.add(_OPS.OP_TYPE_MAX_POOL2D, x, kernel_size=kernel_size, stride=stride)


def _set_attribute(target: blueprint_pb2.AttributeValue, kind: AttrKind, value: AttrArg) -> None:
    if kind is AttrKind.FLOAT and isinstance(value, int | float):
        target.float_value = float(value)
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.float_value = value
    else:
        target.ints_value.values.extend(value)
