"""The Urabrask domain API: what other subsystems depend on, in-process or remote.

`UrabraskService` implements it in-process; `esper.clients.urabrask.UrabraskClient`
implements it over gRPC. Each method is named after an `UrabraskService` rpc.
"""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import urabrask_pb2


class UrabraskApi(Protocol):
    """Urabrask's validation reports."""

    def get_validation_report(
        self, request: urabrask_pb2.GetValidationReportRequest
    ) -> urabrask_pb2.GetValidationReportResponse:
        """The latest report for a kernel; NotFound (KERNEL_NOT_FOUND) if it has none."""
        ...

    def list_validation_reports(
        self, request: urabrask_pb2.ListValidationReportsRequest
    ) -> urabrask_pb2.ListValidationReportsResponse:
        """Reports newest first, paged, optionally only passed or only failed ones."""
        ...
