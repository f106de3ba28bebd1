"""The validator against a real UrzaHub (SQLite, folder store), with the sandbox stood in for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.urabrask import validation_report as reports
from esper.urabrask.config import TaggingPolicy, UrabraskConfig
from esper.urabrask.validator import UrabraskValidator
from esper.urza.hub import UrzaHub
from tests.support.signing import TEST_TRUST
from tests.support.urabrask import FakeSandbox, StepClock, add_compiled_kernels, hub_at
from tests.support.urza import TARGET, program_archive

VALIDATED = kernel_pb2.KERNEL_STATUS_VALIDATED
REJECTED = kernel_pb2.KERNEL_STATUS_REJECTED
CONFIG = UrabraskConfig(worker_id="urabrask-test", hardware_target=TARGET, poll_interval_seconds=0.01)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    with hub_at(tmp_path) as hub:
        yield hub


def kernel_after(hub: UrzaHub, kernel_id: str) -> kernel_pb2.KernelArtifact:
    return hub.get_kernel(urza_pb2.GetKernelRequest(kernel_id=kernel_id)).kernel


def test_nothing_to_validate(hub: UrzaHub) -> None:
    assert UrabraskValidator(hub, CONFIG, characterize=FakeSandbox(), trust=TEST_TRUST).run_once() is None


def test_passed_kernel_becomes_validated_with_tags(hub: UrzaHub) -> None:
    (kernel,) = add_compiled_kernels(hub, 1)
    sandbox = FakeSandbox(latencies=[0.05])
    validator = UrabraskValidator(hub, CONFIG, characterize=sandbox, clock=StepClock(), trust=TEST_TRUST)
    report = validator.run_once()
    assert report is not None and report.passed
    assert sandbox.seen == [(program_archive(b"artifact-0"), kernel.kernel_id)]  # the verified bytes reached it
    stored = kernel_after(hub, kernel.kernel_id)
    assert stored.status == VALIDATED
    # One kernel: the fixed rules (0.05 ms is fast, 4 MB neither low nor high memory).
    assert sorted(stored.tags) == ["high_speed", "numerically_stable"]
    assert stored.validation_report.hardware_target == TARGET
    assert stored.validation_report.HasField("create_time")
    assert validator.recent_reports() == [report]


def test_failed_kernel_is_rejected_without_tags(hub: UrzaHub) -> None:
    (kernel,) = add_compiled_kernels(hub, 1)
    failure = reports.failure_reason(reports.NON_FINITE, "output holds NaN/Inf at batch 1")
    UrabraskValidator(hub, CONFIG, characterize=FakeSandbox(failure=failure), trust=TEST_TRUST).run_once()
    stored = kernel_after(hub, kernel.kernel_id)
    assert stored.status == REJECTED
    assert list(stored.tags) == []
    assert stored.validation_report.failure_reason == failure


def test_kernel_for_other_hardware_is_left_to_a_validator_that_measures_on_it(hub: UrzaHub) -> None:
    (kernel,) = add_compiled_kernels(hub, 1, target="cuda_sm90")
    sandbox = FakeSandbox()
    assert UrabraskValidator(hub, CONFIG, characterize=sandbox, trust=TEST_TRUST).run_once() is None
    assert kernel_after(hub, kernel.kernel_id).status == kernel_pb2.KERNEL_STATUS_COMPILED
    assert sandbox.seen == []


def test_kernel_for_other_hardware_handed_over_anyway_is_rejected_unrun(hub: UrzaHub) -> None:
    class IgnoresTheTarget:
        """An Urza that does not filter claims by target (one from before targets were claimed by)."""

        def __getattr__(self, name: str) -> object:
            return getattr(hub, name)

        def claim_validation_job(self, request: urza_pb2.ClaimValidationJobRequest) -> object:
            request.hardware_target = ""
            return hub.claim_validation_job(request)

    (kernel,) = add_compiled_kernels(hub, 1, target="cuda_sm90")
    sandbox = FakeSandbox()
    validator = UrabraskValidator(IgnoresTheTarget(), CONFIG, characterize=sandbox, trust=TEST_TRUST)  # type: ignore[arg-type]
    validator.run_once()
    stored = kernel_after(hub, kernel.kernel_id)
    assert stored.status == REJECTED
    assert reports.failure_category(stored.validation_report.failure_reason) == reports.HARDWARE_MISMATCH
    assert sandbox.seen == []


def test_corrupted_artifact_is_rejected_and_never_run(hub: UrzaHub, tmp_path: Path) -> None:
    (kernel,) = add_compiled_kernels(hub, 1)
    (stored_file,) = (tmp_path / "artifacts" / "kernels" / kernel.kernel_id).glob("*.pt2")
    stored_file.write_bytes(b"tampered")
    sandbox = FakeSandbox()
    UrabraskValidator(hub, CONFIG, characterize=sandbox, trust=TEST_TRUST).run_once()
    stored = kernel_after(hub, kernel.kernel_id)
    assert stored.status == REJECTED
    assert reports.failure_category(stored.validation_report.failure_reason) == reports.CHECKSUM_MISMATCH
    assert sandbox.seen == []


def test_tags_switch_to_percentiles_once_the_population_is_large_enough(hub: UrzaHub) -> None:
    config = UrabraskConfig(hardware_target=TARGET, tagging=TaggingPolicy(min_population=3))
    kernels = add_compiled_kernels(hub, 5)
    # Three peers at 1, 2 and 3 ms (fixed rules: all medium or low), then two newcomers.
    sandbox = FakeSandbox(latencies=[1.0, 2.0, 3.0, 0.5, 9.0])
    validator = UrabraskValidator(hub, config, characterize=sandbox, trust=TEST_TRUST)
    for _ in kernels:
        validator.run_once()
    tags = {kernel.kernel_id: set(kernel_after(hub, kernel.kernel_id).tags) for kernel in kernels}
    first, _, _, fastest, slowest = (tags[kernel.kernel_id] for kernel in kernels)
    assert "low_speed" in first  # 1.0 ms by the fixed rules
    assert "high_speed" in fastest  # 0.5 ms: fixed rules would say medium, its peers say fast
    assert "low_speed" in slowest


def test_run_forever_validates_until_stopped(hub: UrzaHub) -> None:
    kernels = add_compiled_kernels(hub, 2)
    validator = UrabraskValidator(hub, CONFIG, characterize=FakeSandbox(), trust=TEST_TRUST)
    stop = threading.Event()
    worker = threading.Thread(target=validator.run_forever, args=(stop,))
    worker.start()
    try:
        for _ in range(500):
            if len(validator.recent_reports()) == len(kernels):
                break
            stop.wait(0.01)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert all(kernel_after(hub, kernel.kernel_id).status == VALIDATED for kernel in kernels)


def test_run_forever_survives_a_failing_pass(hub: UrzaHub) -> None:
    add_compiled_kernels(hub, 1)
    calls: list[int] = []

    def broken(*args: object) -> kernel_pb2.UrabraskValidationReport:
        calls.append(1)
        raise RuntimeError("sandbox infrastructure broke")

    validator = UrabraskValidator(hub, CONFIG, characterize=broken, trust=TEST_TRUST)
    stop = threading.Event()
    worker = threading.Thread(target=validator.run_forever, args=(stop,))
    worker.start()
    for _ in range(500):
        if calls:
            break
        stop.wait(0.01)
    stop.set()
    worker.join(10)
    assert calls and not worker.is_alive()
