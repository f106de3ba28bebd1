"""UrabraskService over a real in-process server, reading from Urza over gRPC too, and the
validator working through a remote Urza (claim, verified download, submit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.clients import UrabraskClient, UrzaClient
from esper.clients.base import ClientConfig
from esper.errors import InvalidArgument, NotFound
from esper.leyline.v1 import kernel_pb2, urabrask_pb2, urza_pb2
from esper.leyline.v1.services import URABRASK_SERVICE, URZA_SERVICE
from esper.mesh.hosting import host
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.service import UrabraskService
from esper.urabrask.validator import UrabraskValidator
from esper.urza.hub import UrzaHub
from tests.support.servers import ServerFactory
from tests.support.signing import TEST_TRUST
from tests.support.urabrask import FakeSandbox, add_compiled_kernels, hub_at
from tests.support.urza import TARGET, program_archive


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    with hub_at(tmp_path) as hub:
        yield hub


@pytest.fixture
def urza(grpc_server: ServerFactory, hub: UrzaHub) -> Iterator[UrzaClient]:
    server = grpc_server([host(URZA_SERVICE.bind(hub))], service_name="urza")
    with UrzaClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


@pytest.fixture
def urabrask(grpc_server: ServerFactory, urza: UrzaClient) -> Iterator[UrabraskClient]:
    server = grpc_server([host(URABRASK_SERVICE.bind(UrabraskService(urza)))], service_name="urabrask")
    with UrabraskClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


def test_validator_through_remote_urza_then_reports_over_grpc(
    hub: UrzaHub, urza: UrzaClient, urabrask: UrabraskClient
) -> None:
    kernels = add_compiled_kernels(hub, 2)
    sandbox = FakeSandbox(failure="")
    validator = UrabraskValidator(urza, UrabraskConfig(hardware_target=TARGET), characterize=sandbox, trust=TEST_TRUST)
    assert validator.run_once() is not None
    assert validator.run_once() is not None
    assert validator.run_once() is None
    # The bytes went over the stream and were verified before the sandbox saw them.
    assert sorted(artifact for artifact, _ in sandbox.seen) == sorted(
        program_archive(name) for name in (b"artifact-0", b"artifact-1")
    )

    report = urabrask.get_validation_report(
        urabrask_pb2.GetValidationReportRequest(kernel_id=kernels[0].kernel_id)
    ).report
    assert report.passed and report.kernel_id == kernels[0].kernel_id
    stored = urza.get_kernel(urza_pb2.GetKernelRequest(kernel_id=kernels[0].kernel_id)).kernel
    assert stored.status == kernel_pb2.KERNEL_STATUS_VALIDATED
    listed = urabrask.list_validation_reports(urabrask_pb2.ListValidationReportsRequest(passed=True))
    assert {r.kernel_id for r in listed.reports} == {kernel.kernel_id for kernel in kernels}
    failed = urabrask.list_validation_reports(urabrask_pb2.ListValidationReportsRequest(passed=False))
    assert list(failed.reports) == []


def test_errors_keep_their_status_and_reason(hub: UrzaHub, urabrask: UrabraskClient) -> None:
    (pending,) = add_compiled_kernels(hub, 1)
    with pytest.raises(NotFound) as missing:
        urabrask.get_validation_report(urabrask_pb2.GetValidationReportRequest(kernel_id=pending.kernel_id))
    assert missing.value.reason == "KERNEL_NOT_FOUND"
    with pytest.raises(InvalidArgument) as invalid:
        urabrask.get_validation_report(urabrask_pb2.GetValidationReportRequest())
    assert invalid.value.violations[0].field == "kernel_id"
    with pytest.raises(InvalidArgument) as token:
        urabrask.list_validation_reports(urabrask_pb2.ListValidationReportsRequest(page_token="nope"))
    assert token.value.reason == "INVALID_PAGE_TOKEN"
