"""Validation of UrabraskService requests: one function per request type."""

from __future__ import annotations

from esper.errors import InvalidArgument
from esper.leyline.v1 import urabrask_pb2
from esper.paging import validate_page_size

_MAX_KERNEL_ID_CHARS = 256


def validate_get_validation_report(request: urabrask_pb2.GetValidationReportRequest) -> None:
    _check_kernel_id(request.kernel_id, "kernel_id")


def validate_list_validation_reports(request: urabrask_pb2.ListValidationReportsRequest) -> int:
    """Checks the request; returns the effective page size (the page token is checked when decoded)."""
    return validate_page_size(request.page_size)


def _check_kernel_id(kernel_id: str, field: str) -> None:
    if not kernel_id:
        raise InvalidArgument.for_field(field, "is required")
    if len(kernel_id) > _MAX_KERNEL_ID_CHARS:
        raise InvalidArgument.for_field(field, f"must be at most {_MAX_KERNEL_ID_CHARS} characters")
