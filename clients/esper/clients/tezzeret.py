"""Remote Tezzeret: the TezzeretApi methods over gRPC."""

from __future__ import annotations

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import tezzeret_pb2, tezzeret_pb2_grpc


class TezzeretClient(ServiceClient):
    """TezzeretService over the wire, with the same method names as the in-process TezzeretService."""

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, tezzeret_pb2_grpc.TezzeretServiceStub, channel=channel)

    def get_worker_status(
        self, request: tezzeret_pb2.GetWorkerStatusRequest, *, timeout: float | None = None
    ) -> tezzeret_pb2.GetWorkerStatusResponse:
        response: tezzeret_pb2.GetWorkerStatusResponse = self.call("GetWorkerStatus", request, timeout=timeout)
        return response

    def list_worker_jobs(
        self, request: tezzeret_pb2.ListWorkerJobsRequest, *, timeout: float | None = None
    ) -> tezzeret_pb2.ListWorkerJobsResponse:
        response: tezzeret_pb2.ListWorkerJobsResponse = self.call("ListWorkerJobs", request, timeout=timeout)
        return response
