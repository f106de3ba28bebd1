"""UrzaService over gRPC: hands each request to the domain and returns its answer.

The hub validates every request and raises esper.errors; the mesh interceptor maps
them to statuses. Domain calls do blocking database and store I/O, so they run in
worker threads and never stall the event loop serving other rpcs. A download holds
one chunk at a time and ends with DEADLINE_EXCEEDED once it has taken longer than
its server-side deadline, however slowly its client reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc

from esper.errors import DeadlineExceeded
from esper.leyline.v1 import urza_pb2, urza_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.urza.api import UrzaApi
from esper.urza.config import DOWNLOAD_DEADLINE_SECONDS

URZA_SERVICE_NAME: str = urza_pb2.DESCRIPTOR.services_by_name["UrzaService"].full_name
# Artifacts are up to 32 MiB and travel in one CompleteCompileJob message.
URZA_MAX_MESSAGE_BYTES = 48 * 1024 * 1024


class UrzaServicer(urza_pb2_grpc.UrzaServiceServicer):
    """Thin edge over an UrzaApi."""

    def __init__(self, urza: UrzaApi, *, download_deadline_seconds: float = DOWNLOAD_DEADLINE_SECONDS) -> None:
        self._urza = urza
        self._download_deadline = download_deadline_seconds

    async def CreateBlueprint(
        self, request: urza_pb2.CreateBlueprintRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.CreateBlueprintResponse:
        return await asyncio.to_thread(self._urza.create_blueprint, request)

    async def GetBlueprint(
        self, request: urza_pb2.GetBlueprintRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.GetBlueprintResponse:
        return await asyncio.to_thread(self._urza.get_blueprint, request)

    async def ListBlueprints(
        self, request: urza_pb2.ListBlueprintsRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.ListBlueprintsResponse:
        return await asyncio.to_thread(self._urza.list_blueprints, request)

    async def QueryKernels(
        self, request: urza_pb2.QueryKernelsRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.QueryKernelsResponse:
        return await asyncio.to_thread(self._urza.query_kernels, request)

    async def GetKernel(
        self, request: urza_pb2.GetKernelRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.GetKernelResponse:
        return await asyncio.to_thread(self._urza.get_kernel, request)

    async def DownloadKernel(self, request: urza_pb2.DownloadKernelRequest, context: grpc.aio.ServicerContext) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._download_deadline
        chunks = await asyncio.to_thread(self._urza.download_kernel, request)
        try:
            while (chunk := await asyncio.to_thread(_next_chunk, chunks)) is not None:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(context.write(chunk), remaining)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"download of {request.kernel_id} took longer than {self._download_deadline:g} s; "
                        "start it again",
                        reason="RESOURCE_EXHAUSTED",
                    ) from None
        finally:
            await asyncio.to_thread(_close, chunks)

    async def ClaimCompileJob(
        self, request: urza_pb2.ClaimCompileJobRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.ClaimCompileJobResponse:
        return await asyncio.to_thread(self._urza.claim_compile_job, request)

    async def CompleteCompileJob(
        self, request: urza_pb2.CompleteCompileJobRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.CompleteCompileJobResponse:
        return await asyncio.to_thread(self._urza.complete_compile_job, request)

    async def FailCompileJob(
        self, request: urza_pb2.FailCompileJobRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.FailCompileJobResponse:
        return await asyncio.to_thread(self._urza.fail_compile_job, request)

    async def GetCompileJob(
        self, request: urza_pb2.GetCompileJobRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.GetCompileJobResponse:
        return await asyncio.to_thread(self._urza.get_compile_job, request)

    async def ListCompileJobs(
        self, request: urza_pb2.ListCompileJobsRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.ListCompileJobsResponse:
        return await asyncio.to_thread(self._urza.list_compile_jobs, request)

    async def ClaimValidationJob(
        self, request: urza_pb2.ClaimValidationJobRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.ClaimValidationJobResponse:
        return await asyncio.to_thread(self._urza.claim_validation_job, request)

    async def SubmitValidationReport(
        self, request: urza_pb2.SubmitValidationReportRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.SubmitValidationReportResponse:
        return await asyncio.to_thread(self._urza.submit_validation_report, request)


def _next_chunk(chunks: Iterator[urza_pb2.DownloadKernelResponse]) -> urza_pb2.DownloadKernelResponse | None:
    return next(chunks, None)


def _close(chunks: Iterator[urza_pb2.DownloadKernelResponse]) -> None:
    """Release what a stopped download holds (an open file or S3 body) at once, not at garbage collection."""
    close = getattr(chunks, "close", None)
    if callable(close):
        close()


def urza_registration(
    urza: UrzaApi, *, download_deadline_seconds: float = DOWNLOAD_DEADLINE_SECONDS
) -> ServiceRegistration:
    """What build_server needs to host `urza` as esper.leyline.v1.UrzaService."""
    return ServiceRegistration(
        servicer=UrzaServicer(urza, download_deadline_seconds=download_deadline_seconds),
        add_to_server=urza_pb2_grpc.add_UrzaServiceServicer_to_server,
        service_name=URZA_SERVICE_NAME,
    )
