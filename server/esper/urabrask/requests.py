"""Checks of UrabraskService requests: one function per request type."""

from __future__ import annotations

from esper import ids
from esper.leyline.v1 import urabrask_pb2
from esper.paging import validate_page_size


def check_get_validation_report(request: urabrask_pb2.GetValidationReportRequest) -> None:
    ids.KERNEL.check("kernel_id", request.kernel_id)


def check_list_validation_reports(request: urabrask_pb2.ListValidationReportsRequest) -> int:
    """Checks the request; returns the effective page size (the page token is checked when decoded)."""
    return validate_page_size(request.page_size)
