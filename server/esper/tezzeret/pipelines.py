"""The three compilation pipelines: blueprint IR -> kernel artifact bytes and metadata.

- FAST: torch.export of the eager module as is (dynamic batch), saved as .pt2.
- STANDARD: FAST's program lowered to core ATen, constants folded where the graph
  has non-trainable constants, then the saved program is loaded back and checked
  against eager at two batch sizes.
- AGGRESSIVE: STANDARD, then AOTInductor compiles a frozen copy (weights baked in)
  to a native CPU library packaged as .pt2; the package is checked against eager too.

Every artifact is checked to load through `esper.tezzeret.artifacts`, the loader
Kasmina and Urabrask use.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from google.protobuf import duration_pb2
from torch import Tensor, nn

from esper.errors import InvalidArgument
from esper.ir import build_module, example_input, growth_kind, ir_input_shape, ir_output_shape, ir_sha256
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.pipelines import pipeline_name
from esper.tezzeret import passes
from esper.tezzeret.artifacts import load_kernel_module
from esper.tezzeret.config import AGGRESSIVE, FAST, STANDARD, TezzeretConfig
from esper.tezzeret.toolchain import kernel_id, toolchain_hash

logger = logging.getLogger(__name__)


class CompileError(Exception):
    """A compile attempt failed; the message is the compiler's, `retryable` says if trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class CompileInterrupted(CompileError):
    """The compile was cut short because its worker is stopping: not the job's fault, and not an attempt."""


@dataclass(frozen=True)
class CompiledArtifact:
    """What a pipeline made of a module: the bytes, trainable parameters left, and what it did."""

    data: bytes
    parameter_count: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class CompiledKernel:
    """A compiled blueprint: artifact bytes, the kernel metadata to store, wall time and notes."""

    artifact: bytes
    kernel: kernel_pb2.KernelArtifact
    compile_seconds: float
    notes: tuple[str, ...]


def compile_blueprint(
    ir: blueprint_pb2.BlueprintIR,
    pipeline: int,
    config: TezzeretConfig,
    *,
    blueprint_id: str = "",
    template_id: str = "",
    toolchain: str | None = None,
) -> CompiledKernel:
    """Compile `ir` with `pipeline`; CompileError (not retryable for an invalid IR) on failure."""
    started = time.perf_counter()
    try:
        module = build_module(ir)
        example = example_input(ir, config.example_batch_size, seed=config.numerics_seed)
    except InvalidArgument as exc:
        raise CompileError(f"invalid IR: {exc}", retryable=False) from exc
    compiled = compile_module(module, example, pipeline, config)
    seconds = time.perf_counter() - started
    toolchain = toolchain if toolchain is not None else toolchain_hash(config)
    kernel = kernel_pb2.KernelArtifact(
        kernel_id=kernel_id(ir_sha256(ir), config.hardware_target, pipeline, toolchain),
        blueprint_id=blueprint_id,
        pipeline=pipeline,  # type: ignore[arg-type]
        hardware_target=config.hardware_target,
        input_kind=ir.input_kind,
        input_shape=blueprint_pb2.TensorShape(dims=ir_input_shape(ir)),
        growth_kind=growth_kind(ir),  # type: ignore[arg-type]
        output_shape=blueprint_pb2.TensorShape(dims=ir_output_shape(ir)),
        parameter_count=compiled.parameter_count,
        toolchain_hash=toolchain,
        template_id=template_id,
        compile_duration=_duration(seconds),
    )
    return CompiledKernel(compiled.data, kernel, seconds, compiled.notes)


def compile_module(module: nn.Module, example: Tensor, pipeline: int, config: TezzeretConfig) -> CompiledArtifact:
    """Run `pipeline` on an eager module; `example` is one batch of its input."""
    if pipeline not in config.pipelines:
        name = pipeline_name(pipeline)
        raise CompileError(f"pipeline {name} is not enabled on this worker", retryable=False)
    stage = "export"
    if config.device != "cpu":
        module, example = module.to(config.device), example.to(config.device)
    try:
        program = passes.export_program(module, example, config)
        notes = [f"exported {len(passes.program_ops(program))} ops, batch dynamic in [1, {config.max_batch}]"]
        if pipeline == FAST:
            data = passes.save_program(program)
            return CompiledArtifact(data, _parameter_count(load_kernel_module(data, FAST)), tuple(notes))
        stage = "core ATen lowering"
        program = passes.lower_to_core_aten(program)
        stage = "constant folding"
        folded = passes.fold_constants(program, example, config)
        program = folded.program
        notes.append(f"core ATen: {len(passes.program_ops(program))} ops; folded {folded.folded_nodes} nodes")
        stage = "save"
        data = passes.save_program(program)
        loaded = load_kernel_module(data, STANDARD)
        notes.append(check_numerics(loaded, module, example, config, "program"))
        if pipeline == STANDARD:
            return CompiledArtifact(data, _parameter_count(loaded), tuple(notes))
        stage = "AOTInductor"
        package = passes.aoti_package(program, config)
        notes.append(f"AOTInductor package {len(package)} bytes, weights frozen")
        frozen = load_kernel_module(package, AGGRESSIVE)
        notes.append(check_numerics(frozen, module, example, config, "package"))
        return CompiledArtifact(package, 0, tuple(notes))
    except CompileError:
        raise
    except Exception as exc:
        logger.debug("%s failed", stage, exc_info=True)
        raise CompileError(f"{pipeline_name(pipeline)} {stage} failed: {type(exc).__name__}: {exc}") from exc


def check_numerics(kernel: nn.Module, reference: nn.Module, example: Tensor, config: TezzeretConfig, what: str) -> str:
    """Compare `kernel` with eager `reference` at each numerics batch size; CompileError above tolerance."""
    generator = torch.Generator().manual_seed(config.numerics_seed)
    worst = 0.0
    with torch.no_grad():
        for batch in config.numerics_batch_sizes:
            x = torch.randn((batch, *example.shape[1:]), generator=generator).to(example.device)
            got, want = kernel(x), reference(x)
            if got.shape != want.shape:
                raise CompileError(
                    f"numerics check: {what} gives shape {tuple(got.shape)} at batch {batch}, "
                    f"eager gives {tuple(want.shape)}"
                )
            diff = float((got - want).abs().max()) if want.numel() else 0.0
            if not diff <= config.numerics_tolerance:  # also catches NaN
                raise CompileError(
                    f"numerics check: {what} differs from eager by max |diff| {diff:.3g} at batch {batch}, "
                    f"above tolerance {config.numerics_tolerance:g}"
                )
            worst = max(worst, diff)
    sizes = ", ".join(str(b) for b in config.numerics_batch_sizes)
    return f"numerics: {what} max |diff| vs eager {worst:.3g} at batch {sizes}"


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration
