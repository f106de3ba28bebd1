"""The compile passes the pipelines are made of: export, core-ATen lowering, folding, AOTInductor.

Every artifact leaves here without provenance metadata (source file paths and
Python object ids that torch records per node) and without sample inputs, so the
same IR and toolchain give the same program bytes on any machine and install path.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.export import Dim, ExportedProgram

from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.export_lock import exclusive
from esper.tezzeret.toolchain import INDUCTOR_OPTIONS

logger = logging.getLogger(__name__)

# Per-node metadata that varies with install path or object ids and that no consumer needs.
_PROVENANCE_KEYS = ("stack_trace", "from_node")


@dataclass(frozen=True)
class FoldResult:
    """A program after constant folding and how many graph nodes were folded away."""

    program: ExportedProgram
    folded_nodes: int


@exclusive
def export_program(module: nn.Module, example: Tensor, config: TezzeretConfig) -> ExportedProgram:
    """torch.export of `module` as is, with the batch dimension dynamic in [1, max_batch]."""
    batch = Dim("batch", min=1, max=config.max_batch)
    return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))


@exclusive
def lower_to_core_aten(program: ExportedProgram) -> ExportedProgram:
    """Decompose every op into the core ATen opset (the default decomposition table)."""
    return program.run_decompositions()


@exclusive
def fold_constants(program: ExportedProgram, example: Tensor, config: TezzeretConfig) -> FoldResult:
    """Fold subgraphs that depend only on non-trainable constants (buffers, literal tensors).

    Parameters stay parameters, so the program remains trainable; a subgraph that
    reads a parameter is never folded. When something folds, the folded module is
    exported again so the artifact is an ordinary program.
    """
    from torch._inductor.constant_folding import constant_fold

    module = program.module()
    parameter_names = {name for name, _ in module.named_parameters()}
    reads_parameter: dict[torch.fx.Node, bool] = {}
    for node in module.graph.nodes:
        reads_parameter[node] = (node.op == "get_attr" and node.target in parameter_names) or any(
            reads_parameter[source] for source in node.all_input_nodes
        )
    before = _op_count(module.graph)
    constant_fold(module, constraint_fn=lambda node: not reads_parameter.get(node, True))
    folded = before - _op_count(module.graph)
    if folded <= 0:
        return FoldResult(program, 0)
    return FoldResult(lower_to_core_aten(export_program(module, example, config)), folded)


@exclusive
def save_program(program: ExportedProgram) -> bytes:
    """The program as .pt2 bytes, without provenance metadata or sample inputs."""
    strip_provenance(program)
    example_inputs = program.example_inputs
    program.example_inputs = None
    try:
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
    finally:
        program.example_inputs = example_inputs
    return buffer.getvalue()


@exclusive
def aoti_package(program: ExportedProgram, config: TezzeretConfig) -> bytes:
    """AOTInductor compilation of a frozen copy of `program`, as .pt2 package bytes.

    Freezing turns the weights into constants Inductor may fold and lay out for
    its kernels; they are baked into the compiled library, so the result is fixed
    function and inference only. The batch dimension stays dynamic.
    """
    from torch._inductor import aoti_compile_and_package

    strip_provenance(program)
    buffer = io.BytesIO()
    options = {**INDUCTOR_OPTIONS, "compile_threads": config.inductor_compile_threads}
    aoti_compile_and_package(program, package_path=buffer, inductor_configs=options)
    return buffer.getvalue()


def strip_provenance(program: ExportedProgram) -> None:
    for graph_module in program.graph_module.modules():
        if isinstance(graph_module, torch.fx.GraphModule):
            for node in graph_module.graph.nodes:
                for key in _PROVENANCE_KEYS:
                    node.meta.pop(key, None)


def program_ops(program: ExportedProgram) -> list[object]:
    """The targets of the program's call_function nodes, in graph order."""
    return [node.target for node in program.graph.nodes if node.op == "call_function"]


def _op_count(graph: torch.fx.Graph) -> int:
    return sum(1 for node in graph.nodes if node.op == "call_function")
