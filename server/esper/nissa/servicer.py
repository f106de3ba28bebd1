"""NissaService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio

import grpc

from esper.leyline.v1 import nissa_pb2, nissa_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.nissa.api import NissaApi

NISSA_SERVICE_NAME: str = nissa_pb2.DESCRIPTOR.services_by_name["NissaService"].full_name


class NissaServicer(nissa_pb2_grpc.NissaServiceServicer):
    """Thin edge over a NissaApi; the domain validates, the mesh interceptor maps its errors."""

    def __init__(self, nissa: NissaApi) -> None:
        self._nissa = nissa

    async def ListAlerts(
        self, request: nissa_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> nissa_pb2.ListAlertsResponse:
        return await asyncio.to_thread(self._nissa.list_alerts, request)

    async def GetRunSummary(
        self, request: nissa_pb2.GetRunSummaryRequest, context: grpc.aio.ServicerContext
    ) -> nissa_pb2.GetRunSummaryResponse:
        return await asyncio.to_thread(self._nissa.get_run_summary, request)

    async def FindTraces(
        self, request: nissa_pb2.FindTracesRequest, context: grpc.aio.ServicerContext
    ) -> nissa_pb2.FindTracesResponse:
        return await asyncio.to_thread(self._nissa.find_traces, request)


def nissa_registration(nissa: NissaApi) -> ServiceRegistration:
    """What build_server needs to host `nissa` as esper.leyline.v1.NissaService."""
    return ServiceRegistration(
        servicer=NissaServicer(nissa),
        add_to_server=nissa_pb2_grpc.add_NissaServiceServicer_to_server,
        service_name=NISSA_SERVICE_NAME,
    )
