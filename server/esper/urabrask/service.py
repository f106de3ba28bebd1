"""UrabraskService in-process: validation reports, read from the kernels Urza keeps.

Urza stores each kernel's report with the kernel, so every validator's verdicts are
visible here, not only this process's, and nothing is lost on restart.
"""

from __future__ import annotations

from esper.errors import NotFound
from esper.leyline.v1 import kernel_pb2, urabrask_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.paging import decode_page_token, encode_page_token
from esper.urabrask.kernels import Report, reports_with_status
from esper.urabrask.requests import check_get_validation_report, check_list_validation_reports

_VALIDATED = kernel_pb2.KERNEL_STATUS_VALIDATED
_REJECTED = kernel_pb2.KERNEL_STATUS_REJECTED


class UrabraskService:
    """The Urabrask domain API over an UrzaServiceApi (in-process hub or remote client)."""

    def __init__(self, urza: UrzaServiceApi) -> None:
        self._urza = urza

    def get_validation_report(
        self, request: urabrask_pb2.GetValidationReportRequest
    ) -> urabrask_pb2.GetValidationReportResponse:
        check_get_validation_report(request)
        kernel = self._urza.get_kernel(urza_pb2.GetKernelRequest(kernel_id=request.kernel_id)).kernel
        if not kernel.HasField("validation_report"):
            raise NotFound(f"kernel {request.kernel_id} has no validation report yet", reason="KERNEL_NOT_FOUND")
        return urabrask_pb2.GetValidationReportResponse(report=kernel.validation_report)

    def list_validation_reports(
        self, request: urabrask_pb2.ListValidationReportsRequest
    ) -> urabrask_pb2.ListValidationReportsResponse:
        page_size = check_list_validation_reports(request)
        passed = request.passed if request.HasField("passed") else None
        fingerprint = f"list_validation_reports/passed={passed}"
        offset = decode_page_token(request.page_token, fingerprint)
        reports = self._reports(passed)
        page = reports[offset : offset + page_size]
        next_offset = offset + len(page)
        next_token = encode_page_token(next_offset, fingerprint) if next_offset < len(reports) else ""
        return urabrask_pb2.ListValidationReportsResponse(reports=page, next_page_token=next_token)

    def _reports(self, passed: bool | None) -> list[Report]:
        """Every report matching `passed`, newest first (ties by kernel id, so pages are stable)."""
        statuses = {True: [_VALIDATED], False: [_REJECTED], None: [_VALIDATED, _REJECTED]}[passed]
        reports = [report for status in statuses for report in reports_with_status(self._urza, status)]
        if passed is not None:
            reports = [report for report in reports if report.passed == passed]
        reports.sort(key=lambda report: report.kernel_id)
        reports.sort(key=lambda report: report.create_time.ToNanoseconds(), reverse=True)
        return reports
