"""Reading kernels and their reports from Urza, the one place Urabrask's reports live."""

from __future__ import annotations

from collections.abc import Iterator

from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi

_SCAN_PAGE_SIZE = 1000

Report = kernel_pb2.UrabraskValidationReport


def iter_kernels(
    urza: UrzaServiceApi, query: kernel_pb2.KernelQuery, *, limit: int | None = None
) -> Iterator[kernel_pb2.KernelArtifact]:
    """Kernels matching `query`, newest first, following Urza's pages, at most `limit` of them."""
    page_token = ""
    seen = 0
    while True:
        response = urza.query_kernels(
            urza_pb2.QueryKernelsRequest(query=query, page_size=_SCAN_PAGE_SIZE, page_token=page_token)
        )
        for kernel in response.result.kernels:
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield kernel
        page_token = response.result.next_page_token
        if not page_token:
            return


def reports_with_status(urza: UrzaServiceApi, status: int, *, limit: int | None = None) -> list[Report]:
    """Validation reports of the kernels in `status`, newest kernel first."""
    query = kernel_pb2.KernelQuery(status=status)  # type: ignore[arg-type]
    return [
        kernel.validation_report
        for kernel in iter_kernels(urza, query, limit=limit)
        if kernel.HasField("validation_report")
    ]
