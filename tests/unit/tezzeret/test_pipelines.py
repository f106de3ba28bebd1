"""The three compilation pipelines: each artifact loads, matches eager, and the pipelines differ."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from esper.ir import IRBuilder, build_module, ir_sha256, parameter_count
from esper.leyline.v1 import blueprint_pb2
from esper.tezzeret import passes
from esper.tezzeret.artifacts import FrozenKernel, load_kernel_module
from esper.tezzeret.config import AGGRESSIVE, FAST, STANDARD
from esper.tezzeret.pipelines import CompileError, compile_blueprint, compile_module
from esper.tezzeret.toolchain import is_kernel_id, toolchain_hash
from tests.support.tezzeret import attention_ir, conv_ir, mlp_ir
from tests.unit.tezzeret.conftest import ConfigFactory

IRS = {"mlp": mlp_ir, "conv": conv_ir, "attention": attention_ir}


def _max_diff(kernel: nn.Module, ir: blueprint_pb2.BlueprintIR, batch: int) -> float:
    x = torch.randn((batch, *ir.input_shape.dims), generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        return float((kernel(x) - build_module(ir)(x)).abs().max())


@pytest.mark.parametrize("pipeline", [FAST, STANDARD])
@pytest.mark.parametrize("ir_name", sorted(IRS))
def test_program_artifact_loads_matches_eager_and_takes_any_batch(
    make_config: ConfigFactory, ir_name: str, pipeline: int
) -> None:
    ir = IRS[ir_name]()
    compiled = compile_blueprint(ir, pipeline, make_config(), blueprint_id="bp-test")

    kernel = load_kernel_module(compiled.artifact, pipeline)

    for batch in (1, 5, 64):
        assert _max_diff(kernel, ir, batch) <= 1e-6
    trainable = sum(p.numel() for p in kernel.parameters() if p.requires_grad)
    assert trainable == parameter_count(ir) == compiled.kernel.parameter_count


def test_kernel_metadata_follows_appendix_j3(make_config: ConfigFactory) -> None:
    config = make_config()
    ir = mlp_ir()

    kernel = compile_blueprint(ir, STANDARD, config, blueprint_id="bp-x", template_id="mlp_test").kernel

    toolchain = toolchain_hash(config)
    assert kernel.kernel_id == f"{ir_sha256(ir)[:12]}-cpu_test-standard-{toolchain[:8]}"
    assert is_kernel_id(kernel.kernel_id)
    assert re.fullmatch(r"[0-9a-f]{64}", kernel.toolchain_hash)
    assert (kernel.blueprint_id, kernel.template_id, kernel.pipeline) == ("bp-x", "mlp_test", STANDARD)
    assert kernel.hardware_target == "cpu_test"
    assert kernel.input_kind == blueprint_pb2.INPUT_KIND_FEATURES
    assert list(kernel.input_shape.dims) == [16]
    assert kernel.compile_duration.ToNanoseconds() > 0


def test_a_width_kernel_keeps_its_kind_and_output_shape(make_config: ConfigFactory) -> None:
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [2, 8, 8], growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH)
    hidden = builder.max_pool2d(builder.activation(blueprint_pb2.OP_TYPE_RELU, builder.conv2d(builder.input, 3, 3)), 2)
    ir = builder.build(builder.linear(builder.reshape(hidden, (48,)), 10, bias=False))

    compiled = compile_blueprint(ir, STANDARD, make_config(), blueprint_id="bp-w")

    assert compiled.kernel.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH
    assert list(compiled.kernel.output_shape.dims) == [10]
    kernel = load_kernel_module(compiled.artifact, STANDARD)
    for batch in (1, 7):
        assert _max_diff(kernel, ir, batch) <= 1e-6


def test_toolchain_settings_change_the_kernel_id(make_config: ConfigFactory) -> None:
    loose, strict = make_config(numerics_tolerance=1e-3), make_config(numerics_tolerance=1e-5)
    assert toolchain_hash(loose) != toolchain_hash(strict)
    assert toolchain_hash(strict) == toolchain_hash(make_config(numerics_tolerance=1e-5))


def test_standard_is_core_aten_and_fast_is_not(make_config: ConfigFactory) -> None:
    config = make_config()
    ir = mlp_ir()
    fast = torch.export.load(io.BytesIO(compile_blueprint(ir, FAST, config).artifact))
    standard = torch.export.load(io.BytesIO(compile_blueprint(ir, STANDARD, config).artifact))

    def non_core(program: torch.export.ExportedProgram) -> set[str]:
        return {
            str(target)
            for target in passes.program_ops(program)
            if isinstance(target, torch._ops.OpOverload) and torch.Tag.core not in target.tags
        }

    assert "aten.linear.default" in non_core(fast)
    assert non_core(standard) == set()


def test_artifacts_are_reproducible_and_carry_no_paths(make_config: ConfigFactory) -> None:
    config = make_config()
    ir = attention_ir()
    for pipeline in (FAST, STANDARD):
        first = compile_blueprint(ir, pipeline, config).artifact
        assert compile_blueprint(ir, pipeline, config).artifact == first
        with zipfile.ZipFile(io.BytesIO(first)) as archive:
            program_json = next(archive.read(n) for n in archive.namelist() if "/models/" in n)
        assert b"stack_trace" not in program_json
        assert b".py" not in program_json


class _WithConstants(nn.Module):
    """A parameter and a buffer; exp(buffer) depends only on a constant, weight * 2 on a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, 8))
        self.log_scale: Tensor
        self.register_buffer("log_scale", torch.linspace(-1.0, 1.0, 8))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.exp(self.log_scale) + x * (self.weight * 2)


def test_standard_folds_constants_but_keeps_parameters_trainable(make_config: ConfigFactory) -> None:
    module, x = _WithConstants(), torch.randn(4, 8)
    config = make_config()

    standard = compile_module(module, x, STANDARD, config)
    fast = compile_module(module, x, FAST, config)

    assert "folded 1 nodes" in " ".join(standard.notes)
    program = torch.export.load(io.BytesIO(standard.data))
    assert "aten.exp.default" not in {str(t) for t in passes.program_ops(program)}
    loaded = load_kernel_module(standard.data, STANDARD)
    assert [name for name, _ in loaded.named_parameters()] == ["weight"]
    assert standard.parameter_count == fast.parameter_count == 8
    loaded(x).sum().backward()
    assert next(loaded.parameters()).grad is not None
    assert torch.allclose(loaded(x), module(x), atol=1e-6)


def test_numerics_gate_fails_the_compile_with_the_difference(make_config: ConfigFactory) -> None:
    # A negative tolerance fails every check: the drill for the failure path.
    expected = r"numerics check: program differs from eager .* tolerance -1"
    with pytest.raises(CompileError, match=expected) as info:
        compile_blueprint(mlp_ir(), STANDARD, make_config(numerics_tolerance=-1.0))
    assert info.value.retryable


def test_fast_has_no_numerics_gate(make_config: ConfigFactory) -> None:
    compiled = compile_blueprint(mlp_ir(), FAST, make_config(numerics_tolerance=-1.0))
    assert compiled.artifact


def test_invalid_ir_is_not_retryable(make_config: ConfigFactory) -> None:
    ir = mlp_ir()
    ir.output_node_id = "missing"
    with pytest.raises(CompileError, match="invalid IR") as info:
        compile_blueprint(ir, FAST, make_config())
    assert not info.value.retryable


def test_a_pipeline_the_worker_does_not_run_is_refused(make_config: ConfigFactory) -> None:
    with pytest.raises(CompileError, match="not enabled") as info:
        compile_blueprint(mlp_ir(), AGGRESSIVE, make_config(pipelines=(FAST, STANDARD)))
    assert not info.value.retryable


@pytest.mark.slow
def test_aggressive_is_a_frozen_inductor_package(make_config: ConfigFactory) -> None:
    ir = conv_ir()
    compiled = compile_blueprint(ir, AGGRESSIVE, make_config())

    kernel = load_kernel_module(compiled.artifact, AGGRESSIVE)

    assert isinstance(kernel, FrozenKernel)
    assert list(kernel.parameters()) == []
    assert compiled.kernel.parameter_count == 0
    assert compiled.kernel.kernel_id.split("-")[2] == "aggressive"
    with zipfile.ZipFile(io.BytesIO(compiled.artifact)) as archive:
        names = archive.namelist()
    assert any(name.endswith(".so") for name in names)
    assert not any("/models/" in name or "/data/weights/" in name for name in names)
    for batch in (1, 7):
        assert _max_diff(kernel, ir, batch) <= 1e-4
    x = torch.randn(3, *ir.input_shape.dims, requires_grad=True)
    assert not kernel(x).requires_grad


def test_a_worker_builds_for_a_kind_of_device_and_names_it_in_the_target(tmp_path: Path) -> None:
    from esper.tezzeret.config import TezzeretConfig, default_hardware_target

    cpu = TezzeretConfig(worker_id="w", wal_dir=tmp_path / "wal", work_dir=tmp_path / "work")
    assert cpu.hardware_target == default_hardware_target("cpu") and cpu.hardware_target.startswith("cpu_")
    cuda = TezzeretConfig(worker_id="w", wal_dir=tmp_path / "wal", work_dir=tmp_path / "work", device="cuda")
    assert cuda.hardware_target.startswith("cuda_")
    with pytest.raises(ValueError, match="not a cuda target"):
        TezzeretConfig(
            worker_id="w", wal_dir=tmp_path / "wal", work_dir=tmp_path / "work", device="cuda", hardware_target="cpu_x"
        )
