"""Kernels are built, measured and chosen for the run's kind of device: its hardware target."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.tezzeret.config import TezzeretConfig, default_hardware_target
from esper.urabrask.config import UrabraskConfig
from tests.unit.tezzeret.conftest import ConfigFactory

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")


def test_a_cpu_run_builds_for_this_machine_s_cpu_target() -> None:
    assert default_hardware_target("cpu") == default_hardware_target()
    assert default_hardware_target().startswith("cpu_")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "CPU", ""])
def test_an_unknown_device_is_refused_naming_the_field(make_config: ConfigFactory, device: str) -> None:
    with pytest.raises(ValueError, match="device"):
        make_config(device=device)
    with pytest.raises(ValueError, match="device"):
        UrabraskConfig(device=device)


@needs_cuda
def test_on_cuda_a_kernel_is_compiled_and_measured_on_the_gpu(make_config: ConfigFactory, tmp_path: Path) -> None:
    from esper.tezzeret.config import STANDARD
    from esper.tezzeret.pipelines import compile_blueprint
    from esper.urabrask.sandbox import run_sandbox
    from tests.support.kernels import residual_ir

    target = default_hardware_target("cuda")
    assert target.startswith("cuda_sm")
    config: TezzeretConfig = make_config(device="cuda", hardware_target=target)
    compiled = compile_blueprint(residual_ir(), STANDARD, config, blueprint_id="bp-1")
    assert f"-{target}-" in compiled.kernel.kernel_id and compiled.kernel.hardware_target == target
    report = run_sandbox(
        compiled.artifact, compiled.kernel, residual_ir(), UrabraskConfig(hardware_target=target, device="cuda")
    )
    assert report.passed, report.failure_reason
