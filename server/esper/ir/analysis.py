"""Structural analysis of a blueprint IR: nodes, wiring, order and inferred shapes.

Every problem raises `InvalidArgument` with reason INVALID_IR and one violation
whose field path names the offending element (`ir.nodes[3]`, `ir.edges[0]`, ...)
and whose message names the node id.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

from esper.errors import InvalidArgument
from esper.ir import limits
from esper.ir.attributes import AttributeProblem, Attributes, resolve_attributes
from esper.ir.ops import OP_SPECS, OpError, OpSpec, Shape, op_name
from esper.leyline.v1 import blueprint_pb2

NODE_ID_PATTERN = re.compile(r"[a-z0-9_]{1,64}")
INVALID_IR = "INVALID_IR"

_KIND_RANK = {
    blueprint_pb2.INPUT_KIND_FEATURES: 1,
    blueprint_pb2.INPUT_KIND_SEQUENCE: 2,
    blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE: 2,
    blueprint_pb2.INPUT_KIND_IMAGE: 3,
}


def invalid_ir(field_path: str, description: str) -> InvalidArgument:
    return InvalidArgument.for_field(field_path, description, reason=INVALID_IR)


@dataclass(frozen=True)
class NodeInfo:
    """One node with its op rules, resolved attributes and producers by port."""

    index: int
    node: blueprint_pb2.IRNode
    spec: OpSpec
    attributes: Attributes
    inputs: tuple[str, ...]

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def describe(self) -> str:
        return f"node {self.node_id!r} ({op_name(self.node.op_type)})"


@dataclass(frozen=True)
class Analysis:
    """A well-formed IR: nodes by id, a topological order and every node's output shape."""

    nodes: dict[str, NodeInfo]
    order: tuple[str, ...]
    input_node_id: str
    output_node_id: str
    shapes: dict[str, Shape]

    def parameters(self, node_id: str) -> int:
        info = self.nodes[node_id]
        return info.spec.parameters([self.shapes[i] for i in info.inputs], info.attributes)


def analyze(ir: blueprint_pb2.BlueprintIR, *, field_prefix: str = "ir") -> Analysis:
    """Check everything but the declared per-node shapes and the parameter budget."""
    _check_header(ir, field_prefix)
    pending = _read_nodes(ir, field_prefix)
    inputs = _wire(ir, pending, field_prefix)
    input_id = next(i for i, (_, spec, _) in pending.items() if spec.arity == 0)
    output_id = ir.output_node_id
    if output_id not in pending:
        raise invalid_ir(f"{field_prefix}.output_node_id", f"output node {output_id!r} is not a node of the IR")
    nodes = {
        node_id: NodeInfo(
            index, ir.nodes[index], spec, attrs, tuple(inputs[node_id][p] for p in sorted(inputs[node_id]))
        )
        for node_id, (index, spec, attrs) in pending.items()
    }
    _check_reachable(nodes, input_id, field_prefix)
    _check_arity(nodes, inputs, field_prefix)
    order = _topological_order(nodes, field_prefix)
    _check_feeds_output(nodes, output_id, field_prefix)
    if ir.input_kind == blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE:
        _check_causal(nodes, field_prefix)
    shapes = _infer(ir, nodes, order, field_prefix)
    return Analysis(nodes, order, input_id, output_id, shapes)


def check_shape(shape: Shape, field_path: str, what: str) -> None:
    if not 1 <= len(shape) <= limits.MAX_RANK:
        raise invalid_ir(field_path, f"{what} {list(shape)} must have rank 1 to {limits.MAX_RANK}")
    if any(not limits.MIN_DIM <= dim <= limits.MAX_DIM for dim in shape):
        raise invalid_ir(field_path, f"{what} {list(shape)} has a dim outside [1, {limits.MAX_DIM}]")
    if math.prod(shape) > limits.MAX_ACTIVATION_ELEMENTS:
        raise invalid_ir(
            field_path, f"{what} {list(shape)} exceeds {limits.MAX_ACTIVATION_ELEMENTS} elements per sample"
        )


def _check_header(ir: blueprint_pb2.BlueprintIR, prefix: str) -> None:
    rank = _KIND_RANK.get(ir.input_kind)
    if rank is None:
        raise invalid_ir(f"{prefix}.input_kind", f"unknown or unspecified input kind {ir.input_kind}")
    shape = tuple(ir.input_shape.dims)
    check_shape(shape, f"{prefix}.input_shape", "input shape")
    if len(shape) != rank:
        kind = blueprint_pb2.InputKind.Name(ir.input_kind)
        raise invalid_ir(f"{prefix}.input_shape", f"{kind} needs an input shape of rank {rank}, got {list(shape)}")
    if not ir.nodes:
        raise invalid_ir(f"{prefix}.nodes", "the IR has no nodes")
    if len(ir.nodes) > limits.MAX_NODES:
        raise invalid_ir(f"{prefix}.nodes", f"{len(ir.nodes)} nodes exceed the limit of {limits.MAX_NODES}")
    if len(ir.edges) > limits.MAX_EDGES:
        raise invalid_ir(f"{prefix}.edges", f"{len(ir.edges)} edges exceed the limit of {limits.MAX_EDGES}")


def _read_nodes(ir: blueprint_pb2.BlueprintIR, prefix: str) -> dict[str, tuple[int, OpSpec, Attributes]]:
    pending: dict[str, tuple[int, OpSpec, Attributes]] = {}
    for index, node in enumerate(ir.nodes):
        path = f"{prefix}.nodes[{index}]"
        if not NODE_ID_PATTERN.fullmatch(node.node_id):
            raise invalid_ir(f"{path}.node_id", f"node id {node.node_id!r} must match [a-z0-9_]{{1,64}}")
        if node.node_id in pending:
            raise invalid_ir(f"{path}.node_id", f"duplicate node id {node.node_id!r}")
        spec = OP_SPECS.get(node.op_type)
        if spec is None:
            raise invalid_ir(
                f"{path}.op_type",
                f"node {node.node_id!r} has unknown or unspecified op type {op_name(node.op_type)}",
            )
        try:
            attrs = resolve_attributes(spec.attributes, node.attributes)
        except AttributeProblem as problem:
            raise invalid_ir(
                f"{path}.attributes.{problem.name}",
                f"node {node.node_id!r} ({op_name(node.op_type)}): {problem.message}",
            ) from None
        pending[node.node_id] = (index, spec, attrs)
    sources = [node_id for node_id, (_, spec, _) in pending.items() if spec.arity == 0]
    if not sources:
        raise invalid_ir(f"{prefix}.nodes", "the IR needs exactly one INPUT node, found none")
    if len(sources) > 1:
        extra = sources[1]
        raise invalid_ir(
            f"{prefix}.nodes[{pending[extra][0]}]",
            f"node {extra!r} is a second INPUT node; the IR needs exactly one, found {sources}",
        )
    return pending


def _wire(
    ir: blueprint_pb2.BlueprintIR, pending: dict[str, tuple[int, OpSpec, Attributes]], prefix: str
) -> dict[str, dict[int, str]]:
    inputs: dict[str, dict[int, str]] = {node_id: {} for node_id in pending}
    for index, edge in enumerate(ir.edges):
        path = f"{prefix}.edges[{index}]"
        for end, node_id in (
            ("source_node_id", edge.source_node_id),
            ("target_node_id", edge.target_node_id),
        ):
            if node_id not in pending:
                raise invalid_ir(f"{path}.{end}", f"edge names unknown node {node_id!r}")
        _, spec, _ = pending[edge.target_node_id]
        ports = inputs[edge.target_node_id]
        if edge.target_port >= spec.arity:
            raise invalid_ir(
                f"{path}.target_port",
                f"node {edge.target_node_id!r} ({spec.name}) has {spec.arity} input port(s); "
                f"port {edge.target_port} does not exist",
            )
        if edge.target_port in ports:
            raise invalid_ir(
                f"{path}.target_port", f"port {edge.target_port} of node {edge.target_node_id!r} is fed twice"
            )
        ports[edge.target_port] = edge.source_node_id
    return inputs


def _node_path(prefix: str, info: NodeInfo) -> str:
    return f"{prefix}.nodes[{info.index}]"


def _check_reachable(nodes: dict[str, NodeInfo], input_id: str, prefix: str) -> None:
    consumers: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for info in nodes.values():
        for source in info.inputs:
            consumers[source].append(info.node_id)
    seen = {input_id}
    queue = deque([input_id])
    while queue:
        for consumer in consumers[queue.popleft()]:
            if consumer not in seen:
                seen.add(consumer)
                queue.append(consumer)
    for info in sorted(nodes.values(), key=lambda i: i.index):
        if info.node_id not in seen:
            raise invalid_ir(_node_path(prefix, info), f"{info.describe()} is not reachable from the input node")


def _check_arity(nodes: dict[str, NodeInfo], inputs: dict[str, dict[int, str]], prefix: str) -> None:
    for info in sorted(nodes.values(), key=lambda i: i.index):
        fed = len(inputs[info.node_id])
        if fed != info.spec.arity:
            raise invalid_ir(_node_path(prefix, info), f"{info.describe()} takes {info.spec.arity} input(s), got {fed}")


def _topological_order(nodes: dict[str, NodeInfo], prefix: str) -> tuple[str, ...]:
    waiting = {node_id: len(set(info.inputs)) for node_id, info in nodes.items()}
    consumers: dict[str, set[str]] = {node_id: set() for node_id in nodes}
    for info in nodes.values():
        for source in info.inputs:
            consumers[source].add(info.node_id)
    ready = sorted(node_id for node_id, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        node_id = ready.pop()
        order.append(node_id)
        for consumer in sorted(consumers[node_id]):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if len(order) < len(nodes):
        cycle = _find_cycle(nodes, {n for n in nodes if n not in set(order)})
        first = nodes[cycle[0]]
        raise invalid_ir(
            _node_path(prefix, first), f"{first.describe()} is on a cycle: {' -> '.join([*cycle, cycle[0]])}"
        )
    return tuple(order)


def _find_cycle(nodes: dict[str, NodeInfo], stuck: set[str]) -> list[str]:
    # Every stuck node has a stuck producer, so walking producers must revisit a node.
    path: list[str] = []
    position: dict[str, int] = {}
    current = min(stuck)
    while current not in position:
        position[current] = len(path)
        path.append(current)
        current = min(source for source in nodes[current].inputs if source in stuck)
    return list(reversed(path[position[current] :]))


def _check_causal(nodes: dict[str, NodeInfo], prefix: str) -> None:
    """A CAUSAL_SEQUENCE block never lets token t read a later token: causal attention, no reshape."""
    for info in sorted(nodes.values(), key=lambda i: i.index):
        op = info.node.op_type
        if op == blueprint_pb2.OP_TYPE_SELF_ATTENTION and not info.attributes.get_int("causal"):
            raise invalid_ir(
                f"{_node_path(prefix, info)}.attributes.causal",
                f"{info.describe()} must be causal (causal = 1) in a CAUSAL_SEQUENCE block",
            )
        if op == blueprint_pb2.OP_TYPE_RESHAPE:
            raise invalid_ir(
                _node_path(prefix, info), f"{info.describe()} could move tokens; a CAUSAL_SEQUENCE block has no RESHAPE"
            )


def _check_feeds_output(nodes: dict[str, NodeInfo], output_id: str, prefix: str) -> None:
    seen = {output_id}
    stack = [output_id]
    while stack:
        for source in nodes[stack.pop()].inputs:
            if source not in seen:
                seen.add(source)
                stack.append(source)
    for info in sorted(nodes.values(), key=lambda i: i.index):
        if info.node_id not in seen:
            raise invalid_ir(_node_path(prefix, info), f"{info.describe()} does not feed the output node {output_id!r}")


def _infer(
    ir: blueprint_pb2.BlueprintIR, nodes: dict[str, NodeInfo], order: tuple[str, ...], prefix: str
) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    for node_id in order:
        info = nodes[node_id]
        path = _node_path(prefix, info)
        if info.spec.arity == 0:
            shapes[node_id] = tuple(ir.input_shape.dims)
            continue
        try:
            shape = info.spec.infer([shapes[source] for source in info.inputs], info.attributes)
        except OpError as error:
            raise invalid_ir(path, f"{info.describe()}: {error}") from None
        check_shape(shape, f"{path}.output_shape", f"{info.describe()} output shape")
        shapes[node_id] = shape
    return shapes
