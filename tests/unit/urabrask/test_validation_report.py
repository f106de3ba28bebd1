"""Report building: failure categories and the report a validator submits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from esper.leyline.v1 import kernel_pb2
from esper.urabrask import validation_report as reports


def test_failure_reason_carries_a_stable_category() -> None:
    reason = reports.failure_reason(reports.NON_FINITE, "output holds NaN/Inf at batch 1")
    assert reason == "non_finite: output holds NaN/Inf at batch 1"
    assert reports.failure_category(reason) == reports.NON_FINITE
    assert reports.failure_category("something else: x") == ""
    assert reports.failure_category("") == ""
    with pytest.raises(ValueError):
        reports.failure_reason("bogus", "x")


def test_failed_report_is_not_passed() -> None:
    failed = reports.failed_report("k1", reports.CHECKSUM_MISMATCH, "sha256 differs")
    assert failed.kernel_id == "k1"
    assert not failed.passed
    assert reports.failure_category(failed.failure_reason) == reports.CHECKSUM_MISMATCH


def test_finish_report_sets_target_tags_and_time() -> None:
    measured = kernel_pb2.UrabraskValidationReport(
        kernel_id="k1", passed=True, latency_ms_mean=0.2, latency_ms_p99=0.4, benchmark_batch_size=32
    )
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    final = reports.finish_report(measured, hardware_target="cpu-x86_64", tags=["high_speed"], now=when)
    assert final.hardware_target == "cpu-x86_64"
    assert list(final.tags) == ["high_speed"]
    assert final.create_time.ToDatetime(tzinfo=UTC) == when
    assert final.latency_ms_p99 == 0.4 and final.benchmark_batch_size == 32
    assert not measured.tags  # the measured report is left alone


def test_finish_report_drops_tags_of_a_failed_kernel() -> None:
    measured = reports.failed_report("k1", reports.CRASH, "sandbox killed by SIGSEGV")
    final = reports.finish_report(measured, hardware_target="cpu-x86_64", tags=["high_speed"])
    assert not final.passed
    assert list(final.tags) == []
    assert final.failure_reason == "crash: sandbox killed by SIGSEGV"
    assert final.HasField("create_time")
