"""KasminaService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc

from esper.kasmina.api import KasminaApi
from esper.leyline.v1 import kasmina_pb2, kasmina_pb2_grpc
from esper.mesh.server import ServiceRegistration

KASMINA_SERVICE_NAME: str = kasmina_pb2.DESCRIPTOR.services_by_name["KasminaService"].full_name


class KasminaServicer(kasmina_pb2_grpc.KasminaServiceServicer):
    """Thin edge over a KasminaApi; the domain validates, the mesh interceptor maps its errors.

    Domain calls run in a worker thread: they take the operator's lock, which the
    training loop holds at epoch boundaries, and must not stall the event loop.
    """

    def __init__(self, kasmina: KasminaApi) -> None:
        self._kasmina = kasmina

    async def ApplyCommand(
        self, request: kasmina_pb2.ApplyCommandRequest, context: grpc.aio.ServicerContext
    ) -> kasmina_pb2.ApplyCommandResponse:
        return await asyncio.to_thread(self._kasmina.apply_command, request)

    async def ListSeedStates(
        self, request: kasmina_pb2.ListSeedStatesRequest, context: grpc.aio.ServicerContext
    ) -> kasmina_pb2.ListSeedStatesResponse:
        return await asyncio.to_thread(self._kasmina.list_seed_states, request)

    async def StreamTelemetry(
        self, request: kasmina_pb2.StreamTelemetryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[kasmina_pb2.StreamTelemetryResponse]:
        stream = await asyncio.to_thread(self._kasmina.stream_telemetry, request)
        try:
            while True:
                response = await asyncio.to_thread(next, stream, None)
                if response is None:
                    return
                yield response
        finally:
            # The client left or the server stops: unblock the worker waiting for the next epoch.
            _close(stream)


def _close(stream: Iterator[kasmina_pb2.StreamTelemetryResponse]) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def kasmina_registration(kasmina: KasminaApi) -> ServiceRegistration:
    """What build_server needs to host `kasmina` as esper.leyline.v1.KasminaService."""
    return ServiceRegistration(
        servicer=KasminaServicer(kasmina),
        add_to_server=kasmina_pb2_grpc.add_KasminaServiceServicer_to_server,
        service_name=KASMINA_SERVICE_NAME,
    )
