"""Fake servicers for real Leyline services, each rpc behaving as its request asks."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from esper.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from esper.leyline.v1 import (
    blueprint_pb2,
    karn_pb2,
    karn_pb2_grpc,
    tolaria_pb2,
    tolaria_pb2_grpc,
    urza_pb2,
    urza_pb2_grpc,
)
from esper.mesh.server import ServiceRegistration

SECRET = "secret-detail-that-must-not-leak"


class ScriptedKarn(karn_pb2_grpc.KarnServiceServicer):
    """GetTemplate does what its template_id says; `calls` counts calls per id."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def GetTemplate(
        self, request: karn_pb2.GetTemplateRequest, context: grpc.aio.ServicerContext
    ) -> karn_pb2.GetTemplateResponse:
        template_id = request.template_id
        self.calls[template_id] += 1
        count = self.calls[template_id]
        if template_id == "not_found":
            raise NotFound("no such template", reason="TEMPLATE_NOT_FOUND", metadata={"id": template_id})
        if template_id == "invalid":
            raise InvalidArgument.for_field("template_id", "is not allowed here")
        if template_id == "boom":
            raise RuntimeError(SECRET)
        if template_id == "unavailable_twice" and count <= 2:
            raise Unavailable("warming up")
        if template_id == "always_unavailable":
            raise Unavailable("down for good")
        if template_id == "retry_later_once" and count == 1:
            raise FailedPrecondition("not yet", retry_after_seconds=0.01)
        if template_id == "slow":
            await asyncio.sleep(30)
        if template_id == "abort":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "servicer aborted itself")
        return karn_pb2.GetTemplateResponse(
            template=blueprint_pb2.BlueprintTemplate(template_id=template_id, name=f"call {count}")
        )


class ScriptedUrza(urza_pb2_grpc.UrzaServiceServicer):
    """DownloadKernel (an async generator) yields `chunk_size` chunks, then fails if asked."""

    async def DownloadKernel(
        self, request: urza_pb2.DownloadKernelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[urza_pb2.DownloadKernelResponse]:
        for offset in range(request.chunk_size):
            yield urza_pb2.DownloadKernelResponse(chunk_data=b"x", offset=offset)
        if request.kernel_id == "missing":
            raise NotFound("no kernel 'missing'", reason="KERNEL_NOT_FOUND")
        if request.kernel_id == "boom":
            raise ValueError(SECRET)


class ScriptedTolaria(tolaria_pb2_grpc.TolariaServiceServicer):
    """StreamRunEvents writes with context.write (a coroutine handler), then fails if asked."""

    async def StreamRunEvents(
        self, request: tolaria_pb2.StreamRunEventsRequest, context: grpc.aio.ServicerContext
    ) -> None:
        for _ in range(request.from_sequence):
            await context.write(tolaria_pb2.StreamRunEventsResponse())
        if request.run_id == "missing":
            raise NotFound("no run 'missing'", reason="RUN_NOT_FOUND")


def raw_registration(name: str, servicer: object, add: Callable[[Any, grpc.aio.Server], None]) -> ServiceRegistration:
    """A hand-written grpc servicer (these fakes use the servicer context) hosted as service `name`."""
    return ServiceRegistration(service_name=name, add_to_server=lambda server: add(servicer, server), domain=servicer)


def karn_registration(servicer: ScriptedKarn) -> ServiceRegistration:
    return raw_registration("esper.leyline.v1.KarnService", servicer, karn_pb2_grpc.add_KarnServiceServicer_to_server)


def streaming_registrations() -> list[ServiceRegistration]:
    return [
        raw_registration(
            "esper.leyline.v1.UrzaService", ScriptedUrza(), urza_pb2_grpc.add_UrzaServiceServicer_to_server
        ),
        raw_registration(
            "esper.leyline.v1.TolariaService", ScriptedTolaria(), tolaria_pb2_grpc.add_TolariaServiceServicer_to_server
        ),
    ]
