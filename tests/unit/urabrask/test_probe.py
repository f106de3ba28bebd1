"""The sandbox's gates, run in this process on real artifacts: NaN, drift, a kernel that
raises, bytes that do not load and a wrong declared shape each fail with their category."""

from __future__ import annotations

import dataclasses

import pytest

from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.tezzeret.pipelines import CompiledKernel
from esper.urabrask import validation_report as reports
from esper.urabrask.probe import ProbeSettings, probe
from tests.support.kernels import compile_kernel, nan_artifact, residual_ir, static_batch_artifact

SETTINGS = ProbeSettings(
    check_batch_sizes=(1, 7, 32),
    benchmark_batch_size=32,
    warmup=1,
    iterations=5,
    drift_tolerance=1e-4,
    input_seed=0,
)
IR = residual_ir(init_seed=0)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> CompiledKernel:
    return compile_kernel(IR, tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> CompiledKernel:
    """The same graph compiled from another init_seed: what a stale or mixed-up artifact looks like."""
    return compile_kernel(residual_ir(init_seed=1), tmp_path_factory.mktemp("other"))


def test_good_kernel_passes_with_measurements(good: CompiledKernel) -> None:
    report = probe(good.kernel, good.artifact, IR, SETTINGS)
    assert report.passed, report.failure_reason
    assert report.kernel_id == good.kernel.kernel_id
    assert 0 < report.latency_ms_mean <= report.latency_ms_p99
    assert report.throughput_ops_per_sec > 0
    assert report.memory_mb_peak > 0
    assert report.precision_drift_vs_fp32 <= SETTINGS.drift_tolerance


def test_nan_output_fails_as_non_finite(good: CompiledKernel) -> None:
    report = probe(good.kernel, nan_artifact(IR), IR, SETTINGS)
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.NON_FINITE
    assert "NaN" in report.failure_reason


def test_other_weights_fail_on_drift(good: CompiledKernel, other_weights: CompiledKernel) -> None:
    report = probe(good.kernel, other_weights.artifact, IR, SETTINGS)
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.PRECISION_DRIFT
    assert report.precision_drift_vs_fp32 > SETTINGS.drift_tolerance


def test_drift_within_a_looser_tolerance_passes(good: CompiledKernel, other_weights: CompiledKernel) -> None:
    """The gate is the tolerance: the same measurement passes when the pipeline allows it."""
    loose = dataclasses.replace(SETTINGS, drift_tolerance=1e9)
    assert probe(good.kernel, other_weights.artifact, IR, loose).passed


def test_kernel_that_raises_fails_as_crash(good: CompiledKernel) -> None:
    report = probe(good.kernel, static_batch_artifact(IR, batch_size=8), IR, SETTINGS)
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.CRASH
    assert "batch 1" in report.failure_reason


def test_bytes_that_do_not_load_fail_as_crash(good: CompiledKernel) -> None:
    truncated = good.artifact[: len(good.artifact) // 2]
    report = probe(good.kernel, truncated, IR, SETTINGS)
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.CRASH
    assert "does not load" in report.failure_reason


def test_declared_shape_must_match_the_ir(good: CompiledKernel) -> None:
    kernel = kernel_pb2.KernelArtifact()
    kernel.CopyFrom(good.kernel)
    kernel.input_shape.CopyFrom(blueprint_pb2.TensorShape(dims=[8]))
    report = probe(kernel, good.artifact, IR, SETTINGS)
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.SHAPE_MISMATCH


def test_a_width_kernel_passes_and_its_declared_output_shape_is_checked(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.unit.ir.irs import width_conv_ir

    ir = width_conv_ir()
    compiled = compile_kernel(ir, tmp_path_factory.mktemp("width"))
    assert probe(compiled.kernel, compiled.artifact, ir, SETTINGS).passed
    kernel = kernel_pb2.KernelArtifact()
    kernel.CopyFrom(compiled.kernel)
    kernel.output_shape.CopyFrom(blueprint_pb2.TensorShape(dims=[2, 8, 8]))
    report = probe(kernel, compiled.artifact, ir, SETTINGS)
    assert reports.failure_category(report.failure_reason) == reports.SHAPE_MISMATCH
    assert "output" in report.failure_reason
