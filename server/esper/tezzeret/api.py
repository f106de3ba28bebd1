"""The Tezzeret domain API: what other subsystems depend on, in-process or remote.

`esper.tezzeret.service.TezzeretService` implements it in-process;
`esper.clients.tezzeret.TezzeretClient` implements it over gRPC.
"""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import tezzeret_pb2


class TezzeretApi(Protocol):
    """A compile worker's status and the jobs it handled."""

    def get_worker_status(self, request: tezzeret_pb2.GetWorkerStatusRequest) -> tezzeret_pb2.GetWorkerStatusResponse:
        """Queue depth, mode, current job and counters."""
        ...

    def list_worker_jobs(self, request: tezzeret_pb2.ListWorkerJobsRequest) -> tezzeret_pb2.ListWorkerJobsResponse:
        """Jobs handled since start, newest first, paged."""
        ...
