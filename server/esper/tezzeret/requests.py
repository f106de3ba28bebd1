"""Checks of TezzeretService requests: one function per rpc, raising InvalidArgument."""

from __future__ import annotations

from dataclasses import dataclass

from esper.leyline.v1 import tezzeret_pb2
from esper.paging import decode_page_token, validate_page_size

WORKER_JOBS_LISTING = "tezzeret:worker_jobs"


@dataclass(frozen=True)
class Page:
    """Where a page starts and how long it is."""

    offset: int
    size: int


def check_get_worker_status(request: tezzeret_pb2.GetWorkerStatusRequest) -> None:
    """The request has no fields; nothing can be wrong with it."""


def check_list_worker_jobs(request: tezzeret_pb2.ListWorkerJobsRequest) -> Page:
    size = validate_page_size(request.page_size)
    offset = decode_page_token(request.page_token, WORKER_JOBS_LISTING)
    return Page(offset=offset, size=size)
