"""Helpers for Tezzeret tests: small IRs, a hub clock, a stub compiler, an Urza proxy that records calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from esper.errors import Unavailable
from esper.ir import IRBuilder, ir_sha256
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.pipelines import CompiledKernel, compile_blueprint
from esper.tezzeret.toolchain import kernel_id
from esper.urza.hub import UrzaHub
from tests.support.urza import program_archive

START_US = 1_700_000_000_000_000


class ManualClock:
    """Microseconds since the epoch for UrzaHub; advances one microsecond per reading and when told."""

    def __init__(self) -> None:
        self.now_us = START_US

    def __call__(self) -> int:
        self.now_us += 1
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


def mlp_ir(width: int = 16, hidden: int = 32, *, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """x + Linear(GELU(Linear(LayerNorm(x)))) on [width] features."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [width], init_seed=init_seed)
    h = builder.layer_norm(builder.input)
    h = builder.linear(h, hidden)
    h = builder.activation(blueprint_pb2.OP_TYPE_GELU, h)
    h = builder.linear(h, width)
    return builder.build(builder.add_(builder.input, h))


def conv_ir(channels: int = 8, size: int = 6, *, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """x + Conv3x3(GELU(GroupNorm(x))) on [C, H, W] images."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [channels, size, size], init_seed=init_seed)
    h = builder.group_norm(builder.input, num_groups=2)
    h = builder.activation(blueprint_pb2.OP_TYPE_GELU, h)
    h = builder.conv2d(h, channels, 3)
    return builder.build(builder.add_(builder.input, h))


def attention_ir(tokens: int = 4, dim: int = 16, *, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """x + SelfAttention(LayerNorm(x)) on [T, D] sequences."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_SEQUENCE, [tokens, dim], init_seed=init_seed)
    h = builder.self_attention(builder.layer_norm(builder.input), num_heads=2)
    return builder.build(builder.add_(builder.input, h))


class StubCompiler:
    """Stands in for compile_blueprint where the artifact's content does not matter (Urza stores
    any bytes in a well-formed archive); counts calls. With `real=True` it runs the real pipelines and still counts."""

    def __init__(self, *, real: bool = False, before: Callable[[], None] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self._real = real
        self._before = before

    def __call__(
        self, ir: blueprint_pb2.BlueprintIR, pipeline: int, config: TezzeretConfig, **kwargs: Any
    ) -> CompiledKernel:
        self.calls.append((kwargs.get("blueprint_id", ""), pipeline))
        if self._before is not None:
            self._before()
        if self._real:
            return compile_blueprint(ir, pipeline, config, **kwargs)
        toolchain = kwargs["toolchain"]
        kid = kernel_id(ir_sha256(ir), config.hardware_target, pipeline, toolchain)
        kernel = kernel_pb2.KernelArtifact(
            kernel_id=kid,
            blueprint_id=kwargs.get("blueprint_id", ""),
            pipeline=pipeline,  # type: ignore[arg-type]
            hardware_target=config.hardware_target,
            toolchain_hash=toolchain,
            parameter_count=1,
        )
        return CompiledKernel(program_archive(f"stub artifact {kid}".encode()), kernel, 0.001, ("stub",))


class RecordingUrza:
    """Delegates to a hub, recording claim requests; the first `unavailable_claims` claims fail."""

    def __init__(self, hub: UrzaHub, *, unavailable_claims: int = 0) -> None:
        self.hub = hub
        self.claims: list[urza_pb2.ClaimCompileJobRequest] = []
        self._unavailable = unavailable_claims

    def claim_compile_job(self, request: urza_pb2.ClaimCompileJobRequest) -> urza_pb2.ClaimCompileJobResponse:
        if self._unavailable > 0:
            self._unavailable -= 1
            raise Unavailable("urza is restarting")
        self.claims.append(request)
        return self.hub.claim_compile_job(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)


def submit(hub: UrzaHub, ir: blueprint_pb2.BlueprintIR, *pipelines: int) -> str:
    request = urza_pb2.CreateBlueprintRequest(ir=ir, pipelines=pipelines)  # type: ignore[arg-type]
    return hub.create_blueprint(request).blueprint.blueprint_id


def blueprint(hub: UrzaHub, blueprint_id: str) -> urza_pb2.GetBlueprintResponse:
    return hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id))


def stored_objects(urza_dir: Path) -> list[Path]:
    return sorted(path for path in (urza_dir / "artifacts").rglob("*") if path.is_file())


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []
