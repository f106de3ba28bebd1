"""TezzeretService: the status rpcs over a worker's state."""

from __future__ import annotations

from esper.leyline.v1 import tezzeret_pb2
from esper.paging import encode_page_token
from esper.tezzeret.requests import (
    WORKER_JOBS_LISTING,
    check_get_worker_status,
    check_list_worker_jobs,
)
from esper.tezzeret.state import WorkerState


class TezzeretService:
    """Implements TezzeretServiceApi from the state a `TezzeretWorker` keeps (`worker.state`)."""

    def __init__(self, state: WorkerState) -> None:
        self._state = state

    def get_worker_status(self, request: tezzeret_pb2.GetWorkerStatusRequest) -> tezzeret_pb2.GetWorkerStatusResponse:
        check_get_worker_status(request)
        return self._state.status()

    def list_worker_jobs(self, request: tezzeret_pb2.ListWorkerJobsRequest) -> tezzeret_pb2.ListWorkerJobsResponse:
        page = check_list_worker_jobs(request)
        jobs = self._state.jobs_newest_first()
        chosen = jobs[page.offset : page.offset + page.size]
        more = page.offset + len(chosen) < len(jobs)
        token = encode_page_token(page.offset + len(chosen), WORKER_JOBS_LISTING) if more else ""
        return tezzeret_pb2.ListWorkerJobsResponse(jobs=chosen, next_page_token=token)
