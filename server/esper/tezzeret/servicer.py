"""TezzeretService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import grpc

from esper.leyline.v1 import tezzeret_pb2, tezzeret_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.tezzeret.api import TezzeretApi

TEZZERET_SERVICE_NAME: str = tezzeret_pb2.DESCRIPTOR.services_by_name["TezzeretService"].full_name


class TezzeretServicer(tezzeret_pb2_grpc.TezzeretServiceServicer):
    """Thin edge over a TezzeretApi; the domain validates, the mesh interceptor maps its errors.

    The domain calls only copy the worker's state under a short lock, so they run on
    the event loop; compiles happen in the worker's own thread.
    """

    def __init__(self, tezzeret: TezzeretApi) -> None:
        self._tezzeret = tezzeret

    async def GetWorkerStatus(
        self, request: tezzeret_pb2.GetWorkerStatusRequest, context: grpc.aio.ServicerContext
    ) -> tezzeret_pb2.GetWorkerStatusResponse:
        return self._tezzeret.get_worker_status(request)

    async def ListWorkerJobs(
        self, request: tezzeret_pb2.ListWorkerJobsRequest, context: grpc.aio.ServicerContext
    ) -> tezzeret_pb2.ListWorkerJobsResponse:
        return self._tezzeret.list_worker_jobs(request)


def tezzeret_registration(tezzeret: TezzeretApi) -> ServiceRegistration:
    """What build_server needs to host `tezzeret` as esper.leyline.v1.TezzeretService."""
    return ServiceRegistration(
        servicer=TezzeretServicer(tezzeret),
        add_to_server=tezzeret_pb2_grpc.add_TezzeretServiceServicer_to_server,
        service_name=TEZZERET_SERVICE_NAME,
    )
