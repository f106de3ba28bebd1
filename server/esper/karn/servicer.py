"""KarnService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio

import grpc

from esper.karn.api import KarnApi
from esper.leyline.v1 import karn_pb2, karn_pb2_grpc
from esper.mesh.server import ServiceRegistration

KARN_SERVICE_NAME: str = karn_pb2.DESCRIPTOR.services_by_name["KarnService"].full_name


class KarnServicer(karn_pb2_grpc.KarnServiceServicer):
    """Thin edge over a KarnApi; the domain validates, the mesh interceptor maps its errors.

    Domain calls run in a worker thread: a query builds IRs for the site's shape and
    must not stall the event loop that serves every other rpc.
    """

    def __init__(self, karn: KarnApi) -> None:
        self._karn = karn

    async def ListTemplates(
        self, request: karn_pb2.ListTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> karn_pb2.ListTemplatesResponse:
        return await asyncio.to_thread(self._karn.list_templates, request)

    async def GetTemplate(
        self, request: karn_pb2.GetTemplateRequest, context: grpc.aio.ServicerContext
    ) -> karn_pb2.GetTemplateResponse:
        return await asyncio.to_thread(self._karn.get_template, request)

    async def QueryTemplates(
        self, request: karn_pb2.QueryTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> karn_pb2.QueryTemplatesResponse:
        return await asyncio.to_thread(self._karn.query_templates, request)

    async def SubmitFieldReports(
        self, request: karn_pb2.SubmitFieldReportsRequest, context: grpc.aio.ServicerContext
    ) -> karn_pb2.SubmitFieldReportsResponse:
        return await asyncio.to_thread(self._karn.submit_field_reports, request)


def karn_registration(karn: KarnApi) -> ServiceRegistration:
    """What build_server needs to host `karn` as esper.leyline.v1.KarnService."""
    return ServiceRegistration(
        servicer=KarnServicer(karn),
        add_to_server=karn_pb2_grpc.add_KarnServiceServicer_to_server,
        service_name=KARN_SERVICE_NAME,
    )
