"""The sandbox as a separate process: a good kernel's report comes back from the child;
a kernel that fails there is reported, a child that dies or hangs is a crash. Each case
runs twice: in a new interpreter and in a child forked from the warm fork server.

The gates themselves are tested in-process (tests/unit/urabrask/test_probe.py). Each
case here is a child process (~2-4 s with the torch import), so they run concurrently
once per module and the tests read their reports.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from esper.leyline.v1 import kernel_pb2
from esper.urabrask import sandbox
from esper.urabrask import validation_report as reports
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.sandbox import ForkedSandbox, run_sandbox
from tests.support.kernels import compile_kernel, residual_ir

Report = kernel_pb2.UrabraskValidationReport
CONFIG = UrabraskConfig(check_batch_sizes=(1, 32), benchmark_batch_size=32, warmup=2, iterations=30)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    ir = residual_ir(init_seed=0)
    good = compile_kernel(ir, tmp_path_factory.mktemp("sandbox"))
    kernel = good.kernel
    hasty = UrabraskConfig(sandbox_timeout_seconds=0.05)
    cases: dict[str, Callable[[], Report]] = {
        "good": lambda: run_sandbox(good.artifact, kernel, ir, CONFIG),
        "corrupt": lambda: run_sandbox(b"PK\x03\x04 not really a zip archive", kernel, ir, CONFIG),
        "timeout": lambda: run_sandbox(good.artifact, kernel, ir, hasty),
    }
    forked = ForkedSandbox(name="test-urabrask-forks")
    cases.update(
        {
            "forked good": lambda: forked(good.artifact, kernel, ir, CONFIG),
            "forked corrupt": lambda: forked(b"PK\x03\x04 not really a zip archive", kernel, ir, CONFIG),
            "forked timeout": lambda: forked(good.artifact, kernel, ir, UrabraskConfig(sandbox_timeout_seconds=0.05)),
        }
    )
    try:
        with ThreadPoolExecutor(max_workers=len(cases)) as pool:
            futures = {name: pool.submit(case) for name, case in cases.items()}
            return {name: future.result() for name, future in futures.items()}
    finally:
        forked.close()


@pytest.mark.parametrize("case", ["good", "forked good"])
def test_good_kernel_passes_with_measurements(outcomes: dict[str, Report], case: str) -> None:
    report = outcomes[case]
    assert report.passed, report.failure_reason
    assert report.failure_reason == ""
    assert report.kernel_id
    assert report.benchmark_batch_size == CONFIG.benchmark_batch_size
    assert 0 < report.latency_ms_mean <= report.latency_ms_p99
    assert report.throughput_ops_per_sec > 0
    assert report.memory_mb_peak > 0
    assert 0 <= report.precision_drift_vs_fp32 <= CONFIG.tolerance_for(kernel_pb2.COMPILATION_PIPELINE_FAST)
    assert report.power_watts_avg == 0


@pytest.mark.parametrize("case", ["corrupt", "forked corrupt"])
def test_failure_in_the_child_is_reported(outcomes: dict[str, Report], case: str) -> None:
    report = outcomes[case]
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.CRASH
    assert "does not load" in report.failure_reason


@pytest.mark.parametrize("case", ["timeout", "forked timeout"])
def test_sandbox_that_outlives_its_timeout_is_killed(outcomes: dict[str, Report], case: str) -> None:
    report = outcomes[case]
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.CRASH
    assert "timed out" in report.failure_reason


def test_child_that_dies_without_a_report_is_a_crash(tmp_path: Path) -> None:
    """A request folder the child cannot read makes it exit non-zero before any report."""
    request = tmp_path / "request"
    request.mkdir()
    (request / sandbox.SETTINGS_FILE).write_text("{not json", encoding="utf-8")
    report = sandbox._spawn(request, CONFIG)
    assert not report.passed
    assert reports.failure_category(report.failure_reason) == reports.CRASH
    assert "exited with code 1" in report.failure_reason
    assert "JSONDecodeError" in report.failure_reason
