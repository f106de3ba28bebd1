"""Blueprint IR: validation, shape inference, parameter count, canonical hash, eager module.

A blueprint IR (`esper.leyline.v1.BlueprintIR`) is a small typed op graph mapping
an activation of `input_shape` (without batch) to the same shape (a depth block),
or what enters a layer to what it adds to the next layer's output (a width block). The op
semantics are defined in `esper.ir.ops`; `build_module` is the reference eager
implementation every compiled kernel is checked against.

The torch-backed names (`build_module`, `example_input`, `BlueprintModule`) load
on first use, so servers that only validate or hash IRs never import torch.
"""

from typing import TYPE_CHECKING, Any

from esper.ir.analysis import INVALID_IR, NODE_ID_PATTERN
from esper.ir.builder import IRBuilder
from esper.ir.canonical import canonical_bytes, canonical_ir, ir_sha256
from esper.ir.ops import OP_SPECS, Shape, op_name
from esper.ir.validate import (
    growth_kind,
    infer_shapes,
    ir_input_shape,
    ir_output_shape,
    parameter_count,
    validate_ir,
    width_input_layer,
    width_units,
)

if TYPE_CHECKING:
    from esper.ir.module import BlueprintModule, build_module, example_input

_TORCH_BACKED = frozenset({"BlueprintModule", "build_module", "example_input"})


def __getattr__(name: str) -> Any:
    if name in _TORCH_BACKED:
        from esper.ir import module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INVALID_IR",
    "NODE_ID_PATTERN",
    "OP_SPECS",
    "BlueprintModule",
    "IRBuilder",
    "Shape",
    "build_module",
    "canonical_bytes",
    "canonical_ir",
    "example_input",
    "growth_kind",
    "infer_shapes",
    "ir_input_shape",
    "ir_output_shape",
    "ir_sha256",
    "op_name",
    "parameter_count",
    "validate_ir",
    "width_input_layer",
    "width_units",
]
