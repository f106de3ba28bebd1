"""UrabraskService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio

import grpc

from esper.leyline.v1 import urabrask_pb2, urabrask_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.urabrask.api import UrabraskApi

URABRASK_SERVICE_NAME: str = urabrask_pb2.DESCRIPTOR.services_by_name["UrabraskService"].full_name


class UrabraskServicer(urabrask_pb2_grpc.UrabraskServiceServicer):
    """Thin edge over an UrabraskApi; the domain validates, the mesh interceptor maps its errors.

    Domain calls run in a worker thread: they read from Urza, possibly over the network.
    """

    def __init__(self, urabrask: UrabraskApi) -> None:
        self._urabrask = urabrask

    async def GetValidationReport(
        self, request: urabrask_pb2.GetValidationReportRequest, context: grpc.aio.ServicerContext
    ) -> urabrask_pb2.GetValidationReportResponse:
        return await asyncio.to_thread(self._urabrask.get_validation_report, request)

    async def ListValidationReports(
        self, request: urabrask_pb2.ListValidationReportsRequest, context: grpc.aio.ServicerContext
    ) -> urabrask_pb2.ListValidationReportsResponse:
        return await asyncio.to_thread(self._urabrask.list_validation_reports, request)


def urabrask_registration(urabrask: UrabraskApi) -> ServiceRegistration:
    """What build_server needs to host `urabrask` as esper.leyline.v1.UrabraskService."""
    return ServiceRegistration(
        servicer=UrabraskServicer(urabrask),
        add_to_server=urabrask_pb2_grpc.add_UrabraskServiceServicer_to_server,
        service_name=URABRASK_SERVICE_NAME,
    )
