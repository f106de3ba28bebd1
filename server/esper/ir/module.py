"""Eager PyTorch module for a blueprint IR: the reference every compiled kernel must match."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.ir import torch_ops
from esper.ir.analysis import Analysis, NodeInfo
from esper.ir.validate import ir_input_shape, validated_analysis
from esper.leyline.v1 import blueprint_pb2

_OPS = blueprint_pb2.OpType
_ELEMENTWISE: dict[int, Callable[..., Tensor]] = {
    _OPS.OP_TYPE_RELU: F.relu,
    _OPS.OP_TYPE_GELU: F.gelu,
    _OPS.OP_TYPE_SILU: F.silu,
    _OPS.OP_TYPE_TANH: torch.tanh,
    _OPS.OP_TYPE_SIGMOID: torch.sigmoid,
    _OPS.OP_TYPE_ADD: torch.add,
    _OPS.OP_TYPE_MUL: torch.mul,
    _OPS.OP_TYPE_GLOBAL_AVG_POOL: torch_ops.global_avg_pool,
}


class BlueprintModule(nn.Module):
    """Runs the IR's nodes in topological order: [batch, *input_shape] -> [batch, *output_shape].

    The plan is fixed at construction, so forward has no data-dependent control
    flow and exports with a dynamic batch dimension.
    """

    def __init__(self, analysis: Analysis, ops: dict[str, nn.Module]) -> None:
        super().__init__()
        # Prefixed keys: a node may be called "type" or "eval", which ModuleDict would refuse.
        self.ops = nn.ModuleDict({_key(node_id): module for node_id, module in ops.items()})
        self._plan = tuple((node_id, analysis.nodes[node_id].inputs) for node_id in analysis.order if node_id in ops)
        self._input_id = analysis.input_node_id
        self._output_id = analysis.output_node_id

    def forward(self, x: Tensor) -> Tensor:
        values: dict[str, Tensor] = {self._input_id: x}
        for node_id, inputs in self._plan:
            values[node_id] = self.ops[_key(node_id)](*(values[source] for source in inputs))
        return values[self._output_id]


def build_module(ir: blueprint_pb2.BlueprintIR) -> BlueprintModule:
    """Validate `ir` and build its module, initialized deterministically from `ir.init_seed`.

    Each node draws from its own generator seeded by (init_seed, node_id), so the
    weights do not depend on the order nodes are listed in.
    """
    analysis = validated_analysis(ir)
    ops: dict[str, nn.Module] = {}
    for node_id in analysis.order:
        info = analysis.nodes[node_id]
        if info.spec.arity == 0:
            continue
        shape = analysis.shapes[info.inputs[0]]
        ops[node_id] = _node_module(info, shape, _node_generator(ir.init_seed, node_id))
    return BlueprintModule(analysis, ops)


def example_input(ir: blueprint_pb2.BlueprintIR, batch_size: int = 8, seed: int = 0) -> Tensor:
    """A standard-normal batch of the IR's input shape, from a local generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *ir_input_shape(ir)), generator=generator)


def _key(node_id: str) -> str:
    return f"n_{node_id}"


def _node_generator(init_seed: int, node_id: str) -> torch.Generator:
    digest = hashlib.sha256(f"{init_seed}/{node_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))


def _node_module(info: NodeInfo, shape: tuple[int, ...], generator: torch.Generator) -> nn.Module:
    op, attrs = info.node.op_type, info.attributes
    if op in _ELEMENTWISE:
        return torch_ops.Elementwise(_ELEMENTWISE[op])
    if op == _OPS.OP_TYPE_LINEAR:
        return torch_ops.Linear(
            shape[-1],
            attrs.get_int("out_features"),
            bias=bool(attrs.get_int("bias")),
            init_scale=attrs.get_float("init_scale"),
            generator=generator,
        )
    if op == _OPS.OP_TYPE_CONV2D:
        return torch_ops.Conv2d(
            shape[0],
            attrs.get_int("out_channels"),
            kernel_size=attrs.get_int("kernel_size"),
            stride=attrs.get_int("stride"),
            padding=attrs.get_int("padding"),
            groups=attrs.get_int("groups"),
            bias=bool(attrs.get_int("bias")),
            init_scale=attrs.get_float("init_scale"),
            generator=generator,
        )
    if op == _OPS.OP_TYPE_LAYER_NORM:
        return torch_ops.LayerNorm(shape, eps=attrs.get_float("eps"))
    if op == _OPS.OP_TYPE_GROUP_NORM:
        return torch_ops.GroupNorm(shape[0], num_groups=attrs.get_int("num_groups"), eps=attrs.get_float("eps"))
    if op == _OPS.OP_TYPE_RESHAPE:
        return torch_ops.Reshape(attrs.get_ints("shape"))
    if op == _OPS.OP_TYPE_SELF_ATTENTION:
        return torch_ops.SelfAttention(
            shape[-1],
            num_heads=attrs.get_int("num_heads"),
            init_scale=attrs.get_float("init_scale"),
            causal=bool(attrs.get_int("causal")),
            generator=generator,
        )
    if op == _OPS.OP_TYPE_SCALE:
        return torch_ops.Scale(shape, init_value=attrs.get_float("init_value"))
    if op == _OPS.OP_TYPE_MAX_POOL2D:
        kernel = attrs.get_int("kernel_size")
        return torch_ops.MaxPool2d(kernel, attrs.get_int("stride") or kernel)
    raise AssertionError(f"no module for {info.describe()}")  # validate_ir refuses unknown ops
