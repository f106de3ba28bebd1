"""Urabrask's side: claim a compiled kernel, submit the verdict."""

from __future__ import annotations

import pytest

from esper.errors import FailedPrecondition, InvalidArgument, NotFound
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.urza.hub import UrzaHub
from tests.support.urza import FakeClock, compile_all, submit, validate

BP = blueprint_pb2.BlueprintStatus
KERNEL = kernel_pb2.KernelStatus


def _status(hub: UrzaHub, blueprint_id: str) -> blueprint_pb2.Blueprint:
    return hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id)).blueprint


def _claim(hub: UrzaHub, worker: str = "v1", lease: int = 0) -> urza_pb2.ClaimValidationJobResponse:
    return hub.claim_validation_job(urza_pb2.ClaimValidationJobRequest(worker_id=worker, lease_seconds=lease))


def _report(
    claimed: urza_pb2.ClaimValidationJobResponse, passed: bool = True
) -> urza_pb2.SubmitValidationReportRequest:
    return urza_pb2.SubmitValidationReportRequest(
        kernel_id=claimed.kernel.kernel_id,
        lease_token=claimed.lease_token,
        report=kernel_pb2.UrabraskValidationReport(passed=passed, tags=["low_memory"]),
    )


def test_claim_leases_the_oldest_compiled_kernel_with_its_ir(hub: UrzaHub) -> None:
    blueprint = submit(hub)
    oldest, _ = compile_all(hub)
    claimed = _claim(hub)
    assert claimed.kernel.kernel_id == oldest.kernel_id
    assert claimed.kernel.status == KERNEL.KERNEL_STATUS_VALIDATING
    assert claimed.ir == blueprint.ir
    assert len(claimed.lease_token) == 32
    assert _claim(hub, "v2").kernel.kernel_id != oldest.kernel_id
    assert not _claim(hub, "v3").HasField("kernel")


def test_a_passing_report_validates_the_kernel_copies_tags_and_validates_the_blueprint(hub: UrzaHub) -> None:
    blueprint = submit(hub)
    compile_all(hub)
    kernel = validate(hub, tags=("high_speed", "low_memory"))
    assert kernel.status == KERNEL.KERNEL_STATUS_VALIDATED
    assert list(kernel.tags) == ["high_speed", "low_memory"]
    assert kernel.validation_report.passed
    assert kernel.validation_report.kernel_id == kernel.kernel_id
    assert _status(hub, blueprint.blueprint_id).status == BP.BLUEPRINT_STATUS_VALIDATED
    # A later rejection of the other kernel does not take VALIDATED away.
    validate(hub, passed=False, reason="drift too large")
    assert _status(hub, blueprint.blueprint_id).status == BP.BLUEPRINT_STATUS_VALIDATED


def test_all_kernels_rejected_rejects_the_blueprint_with_the_reasons(hub: UrzaHub) -> None:
    blueprint = submit(hub)
    compile_all(hub)
    first = validate(hub, passed=False, reason="precision drift 0.3")
    assert first.status == KERNEL.KERNEL_STATUS_REJECTED
    assert _status(hub, blueprint.blueprint_id).status == BP.BLUEPRINT_STATUS_COMPILED
    validate(hub, passed=False, reason="latency gate")
    rejected = _status(hub, blueprint.blueprint_id)
    assert rejected.status == BP.BLUEPRINT_STATUS_REJECTED
    assert "precision drift 0.3" in rejected.failure_reason
    assert "latency gate" in rejected.failure_reason


def test_an_expired_validation_lease_is_lost(hub: UrzaHub, clock: FakeClock) -> None:
    submit(hub, pipelines=[kernel_pb2.COMPILATION_PIPELINE_FAST])
    compile_all(hub)
    first = _claim(hub, "v1", lease=30)
    clock.advance(31)
    second = _claim(hub, "v2")
    assert second.kernel.kernel_id == first.kernel.kernel_id
    with pytest.raises(FailedPrecondition) as caught:
        hub.submit_validation_report(_report(first))
    assert caught.value.reason == "LEASE_LOST"
    assert hub.submit_validation_report(_report(second)).kernel.status == KERNEL.KERNEL_STATUS_VALIDATED
    # Submitting the same verdict again is a harmless retry.
    assert hub.submit_validation_report(_report(second)).kernel.status == KERNEL.KERNEL_STATUS_VALIDATED


def test_a_report_for_another_kernel_is_refused(hub: UrzaHub) -> None:
    submit(hub)
    compile_all(hub)
    request = _report(_claim(hub))
    request.report.kernel_id = "0123456789ab-cpu-fast-01234567"
    with pytest.raises(InvalidArgument) as caught:
        hub.submit_validation_report(request)
    assert caught.value.violations[0].field == "report.kernel_id"


def test_a_report_with_a_negative_latency_is_refused(hub: UrzaHub) -> None:
    submit(hub)
    compile_all(hub)
    request = _report(_claim(hub))
    request.report.latency_ms_mean = -1.0
    with pytest.raises(InvalidArgument) as caught:
        hub.submit_validation_report(request)
    assert caught.value.violations[0].field == "report.latency_ms_mean"


def test_a_report_for_an_unknown_kernel_is_not_found(hub: UrzaHub) -> None:
    request = urza_pb2.SubmitValidationReportRequest(
        kernel_id="0123456789ab-cpu-fast-01234567",
        lease_token="x",
        report=kernel_pb2.UrabraskValidationReport(),
    )
    with pytest.raises(NotFound) as caught:
        hub.submit_validation_report(request)
    assert caught.value.reason == "KERNEL_NOT_FOUND"
