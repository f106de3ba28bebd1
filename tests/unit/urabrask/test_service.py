"""UrabraskService: reports read back from Urza, newest first, filtered and paged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.errors import InvalidArgument, NotFound
from esper.leyline.v1 import kernel_pb2, urabrask_pb2
from esper.urabrask import validation_report as reports
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.service import UrabraskService
from esper.urabrask.validator import UrabraskValidator
from esper.urza.hub import UrzaHub
from tests.support.signing import TEST_TRUST
from tests.support.urabrask import FakeSandbox, StepClock, add_compiled_kernels, hub_at
from tests.support.urza import TARGET

CONFIG = UrabraskConfig(hardware_target=TARGET)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    with hub_at(tmp_path) as hub:
        yield hub


@pytest.fixture
def validated(hub: UrzaHub) -> list[kernel_pb2.KernelArtifact]:
    """Four kernels: the 1st and 3rd pass, the 2nd and 4th fail; one more stays COMPILED."""
    kernels = add_compiled_kernels(hub, 5)
    clock = StepClock()
    for index in range(4):
        failure = "" if index % 2 == 0 else reports.failure_reason(reports.CRASH, f"kernel {index} raised")
        UrabraskValidator(
            hub, CONFIG, characterize=FakeSandbox(failure=failure), clock=clock, trust=TEST_TRUST
        ).run_once()
    return kernels


def list_all(service: UrabraskService, **fields: object) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        request = urabrask_pb2.ListValidationReportsRequest(page_token=token, **fields)  # type: ignore[arg-type]
        page = service.list_validation_reports(request)
        ids.extend(report.kernel_id for report in page.reports)
        token = page.next_page_token
        if not token:
            return ids


def test_get_report_of_a_validated_kernel(hub: UrzaHub, validated: list[kernel_pb2.KernelArtifact]) -> None:
    service = UrabraskService(hub)
    report = service.get_validation_report(
        urabrask_pb2.GetValidationReportRequest(kernel_id=validated[0].kernel_id)
    ).report
    assert report.kernel_id == validated[0].kernel_id
    assert report.passed


def test_kernel_without_a_report_is_not_found(hub: UrzaHub, validated: list[kernel_pb2.KernelArtifact]) -> None:
    service = UrabraskService(hub)
    with pytest.raises(NotFound) as caught:
        service.get_validation_report(urabrask_pb2.GetValidationReportRequest(kernel_id=validated[4].kernel_id))
    assert caught.value.reason == "KERNEL_NOT_FOUND"
    with pytest.raises(NotFound) as unknown:
        service.get_validation_report(urabrask_pb2.GetValidationReportRequest(kernel_id="no-such-kernel"))
    assert unknown.value.reason == "KERNEL_NOT_FOUND"


def test_kernel_id_is_required(hub: UrzaHub) -> None:
    with pytest.raises(InvalidArgument) as caught:
        UrabraskService(hub).get_validation_report(urabrask_pb2.GetValidationReportRequest())
    assert caught.value.violations[0].field == "kernel_id"


def test_list_newest_first_and_filtered(hub: UrzaHub, validated: list[kernel_pb2.KernelArtifact]) -> None:
    service = UrabraskService(hub)
    ids = [kernel.kernel_id for kernel in validated]
    assert list_all(service) == [ids[3], ids[2], ids[1], ids[0]]
    assert list_all(service, passed=True) == [ids[2], ids[0]]
    assert list_all(service, passed=False) == [ids[3], ids[1]]


def test_list_pages(hub: UrzaHub, validated: list[kernel_pb2.KernelArtifact]) -> None:
    service = UrabraskService(hub)
    first = service.list_validation_reports(urabrask_pb2.ListValidationReportsRequest(page_size=3))
    assert len(first.reports) == 3 and first.next_page_token
    second = service.list_validation_reports(
        urabrask_pb2.ListValidationReportsRequest(page_size=3, page_token=first.next_page_token)
    )
    assert [report.kernel_id for report in second.reports] == [validated[0].kernel_id]
    assert second.next_page_token == ""
    assert list_all(service, page_size=1) == list_all(service)


def test_page_token_is_bound_to_its_filter(hub: UrzaHub, validated: list[kernel_pb2.KernelArtifact]) -> None:
    service = UrabraskService(hub)
    token = service.list_validation_reports(
        urabrask_pb2.ListValidationReportsRequest(page_size=1, passed=True)
    ).next_page_token
    with pytest.raises(InvalidArgument) as caught:
        service.list_validation_reports(urabrask_pb2.ListValidationReportsRequest(page_size=1, page_token=token))
    assert caught.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument) as garbage:
        service.list_validation_reports(urabrask_pb2.ListValidationReportsRequest(page_token="garbage!"))
    assert garbage.value.reason == "INVALID_PAGE_TOKEN"


@pytest.mark.parametrize("page_size", [-1, 1001])
def test_page_size_out_of_range(hub: UrzaHub, page_size: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        UrabraskService(hub).list_validation_reports(urabrask_pb2.ListValidationReportsRequest(page_size=page_size))
    assert caught.value.violations[0].field == "page_size"
