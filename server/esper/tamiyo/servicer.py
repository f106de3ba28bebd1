"""TamiyoService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio

import grpc

from esper.leyline.v1 import tamiyo_pb2, tamiyo_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.tamiyo.api import TamiyoApi

TAMIYO_SERVICE_NAME: str = tamiyo_pb2.DESCRIPTOR.services_by_name["TamiyoService"].full_name


class TamiyoServicer(tamiyo_pb2_grpc.TamiyoServiceServicer):
    """Thin edge over a TamiyoApi; the domain validates, the mesh interceptor maps its errors.

    Domain calls run in a worker thread: a step may query Urza for kernels and must
    not stall the event loop that serves every other rpc.
    """

    def __init__(self, tamiyo: TamiyoApi) -> None:
        self._tamiyo = tamiyo

    async def Step(self, request: tamiyo_pb2.StepRequest, context: grpc.aio.ServicerContext) -> tamiyo_pb2.StepResponse:
        return await asyncio.to_thread(self._tamiyo.step, request)

    async def GetStatus(
        self, request: tamiyo_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> tamiyo_pb2.GetStatusResponse:
        return await asyncio.to_thread(self._tamiyo.get_status, request)

    async def LoadPolicy(
        self, request: tamiyo_pb2.LoadPolicyRequest, context: grpc.aio.ServicerContext
    ) -> tamiyo_pb2.LoadPolicyResponse:
        return await asyncio.to_thread(self._tamiyo.load_policy, request)

    async def ExportControllerState(
        self, request: tamiyo_pb2.ExportControllerStateRequest, context: grpc.aio.ServicerContext
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        return await asyncio.to_thread(self._tamiyo.export_controller_state, request)

    async def RestoreControllerState(
        self, request: tamiyo_pb2.RestoreControllerStateRequest, context: grpc.aio.ServicerContext
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        return await asyncio.to_thread(self._tamiyo.restore_controller_state, request)


def tamiyo_registration(tamiyo: TamiyoApi) -> ServiceRegistration:
    """What build_server needs to host `tamiyo` as esper.leyline.v1.TamiyoService."""
    return ServiceRegistration(
        servicer=TamiyoServicer(tamiyo),
        add_to_server=tamiyo_pb2_grpc.add_TamiyoServiceServicer_to_server,
        service_name=TAMIYO_SERVICE_NAME,
    )
