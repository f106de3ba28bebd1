"""TolariaService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from esper.leyline.v1 import tolaria_pb2, tolaria_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.tolaria.api import TolariaApi

TOLARIA_SERVICE_NAME: str = tolaria_pb2.DESCRIPTOR.services_by_name["TolariaService"].full_name
STREAM_WORKERS = 64


class TolariaServicer(tolaria_pb2_grpc.TolariaServiceServicer):
    """Thin edge over a TolariaApi; the domain validates, the mesh interceptor maps its errors.

    Domain calls run in worker threads. An event stream waits in a thread of its own
    pool for the run's next event (an epoch can take minutes), so open streams never
    take the threads that unary calls need.
    """

    def __init__(self, tolaria: TolariaApi, *, stream_workers: int = STREAM_WORKERS) -> None:
        self._tolaria = tolaria
        self._streams = ThreadPoolExecutor(max_workers=stream_workers, thread_name_prefix="run-events")

    async def CreateRun(
        self, request: tolaria_pb2.CreateRunRequest, context: grpc.aio.ServicerContext
    ) -> tolaria_pb2.CreateRunResponse:
        return await asyncio.to_thread(self._tolaria.create_run, request)

    async def GetRun(
        self, request: tolaria_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> tolaria_pb2.GetRunResponse:
        return await asyncio.to_thread(self._tolaria.get_run, request)

    async def ListRuns(
        self, request: tolaria_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> tolaria_pb2.ListRunsResponse:
        return await asyncio.to_thread(self._tolaria.list_runs, request)

    async def CancelRun(
        self, request: tolaria_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> tolaria_pb2.CancelRunResponse:
        return await asyncio.to_thread(self._tolaria.cancel_run, request)

    async def StreamRunEvents(
        self, request: tolaria_pb2.StreamRunEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tolaria_pb2.StreamRunEventsResponse]:
        stream = await asyncio.to_thread(self._tolaria.stream_run_events, request)
        loop = asyncio.get_running_loop()
        try:
            while (response := await loop.run_in_executor(self._streams, next, stream, None)) is not None:
                yield response
        finally:
            # The client left or the server stops: release the thread waiting for the next event.
            _close(stream)

    def close(self) -> None:
        self._streams.shutdown(wait=False, cancel_futures=True)


def _close(stream: Iterator[tolaria_pb2.StreamRunEventsResponse]) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def tolaria_registration(tolaria: TolariaApi) -> ServiceRegistration:
    """What build_server needs to host `tolaria` as esper.leyline.v1.TolariaService."""
    return ServiceRegistration(
        servicer=TolariaServicer(tolaria),
        add_to_server=tolaria_pb2_grpc.add_TolariaServiceServicer_to_server,
        service_name=TOLARIA_SERVICE_NAME,
    )
