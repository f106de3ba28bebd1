"""Remote Urza: the UrzaApi methods over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import urza_pb2, urza_pb2_grpc


class UrzaClient(ServiceClient):
    """UrzaService over the wire, with the same method names as the in-process UrzaHub.

    Every call has a deadline (the config's, or `timeout`). The base retries only
    UNAVAILABLE and RetryInfo statuses, and a retry is harmless even when the server
    had already acted: completions, failures and reports are idempotent by lease
    token, and a repeated claim re-issues the worker's own running job.
    """

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, urza_pb2_grpc.UrzaServiceStub, channel=channel)

    def create_blueprint(
        self, request: urza_pb2.CreateBlueprintRequest, *, timeout: float | None = None
    ) -> urza_pb2.CreateBlueprintResponse:
        response: urza_pb2.CreateBlueprintResponse = self.call("CreateBlueprint", request, timeout=timeout)
        return response

    def get_blueprint(
        self, request: urza_pb2.GetBlueprintRequest, *, timeout: float | None = None
    ) -> urza_pb2.GetBlueprintResponse:
        response: urza_pb2.GetBlueprintResponse = self.call("GetBlueprint", request, timeout=timeout)
        return response

    def list_blueprints(
        self, request: urza_pb2.ListBlueprintsRequest, *, timeout: float | None = None
    ) -> urza_pb2.ListBlueprintsResponse:
        response: urza_pb2.ListBlueprintsResponse = self.call("ListBlueprints", request, timeout=timeout)
        return response

    def query_kernels(
        self, request: urza_pb2.QueryKernelsRequest, *, timeout: float | None = None
    ) -> urza_pb2.QueryKernelsResponse:
        response: urza_pb2.QueryKernelsResponse = self.call("QueryKernels", request, timeout=timeout)
        return response

    def get_kernel(
        self, request: urza_pb2.GetKernelRequest, *, timeout: float | None = None
    ) -> urza_pb2.GetKernelResponse:
        response: urza_pb2.GetKernelResponse = self.call("GetKernel", request, timeout=timeout)
        return response

    def download_kernel(
        self, request: urza_pb2.DownloadKernelRequest, *, timeout: float | None = None
    ) -> Iterator[urza_pb2.DownloadKernelResponse]:
        """The chunks; the deadline covers the whole stream."""
        return self.stream("DownloadKernel", request, timeout=timeout)

    def claim_compile_job(
        self, request: urza_pb2.ClaimCompileJobRequest, *, timeout: float | None = None
    ) -> urza_pb2.ClaimCompileJobResponse:
        response: urza_pb2.ClaimCompileJobResponse = self.call("ClaimCompileJob", request, timeout=timeout)
        return response

    def complete_compile_job(
        self, request: urza_pb2.CompleteCompileJobRequest, *, timeout: float | None = None
    ) -> urza_pb2.CompleteCompileJobResponse:
        response: urza_pb2.CompleteCompileJobResponse = self.call("CompleteCompileJob", request, timeout=timeout)
        return response

    def fail_compile_job(
        self, request: urza_pb2.FailCompileJobRequest, *, timeout: float | None = None
    ) -> urza_pb2.FailCompileJobResponse:
        response: urza_pb2.FailCompileJobResponse = self.call("FailCompileJob", request, timeout=timeout)
        return response

    def get_compile_job(
        self, request: urza_pb2.GetCompileJobRequest, *, timeout: float | None = None
    ) -> urza_pb2.GetCompileJobResponse:
        response: urza_pb2.GetCompileJobResponse = self.call("GetCompileJob", request, timeout=timeout)
        return response

    def list_compile_jobs(
        self, request: urza_pb2.ListCompileJobsRequest, *, timeout: float | None = None
    ) -> urza_pb2.ListCompileJobsResponse:
        response: urza_pb2.ListCompileJobsResponse = self.call("ListCompileJobs", request, timeout=timeout)
        return response

    def claim_validation_job(
        self, request: urza_pb2.ClaimValidationJobRequest, *, timeout: float | None = None
    ) -> urza_pb2.ClaimValidationJobResponse:
        response: urza_pb2.ClaimValidationJobResponse = self.call("ClaimValidationJob", request, timeout=timeout)
        return response

    def submit_validation_report(
        self, request: urza_pb2.SubmitValidationReportRequest, *, timeout: float | None = None
    ) -> urza_pb2.SubmitValidationReportResponse:
        response: urza_pb2.SubmitValidationReportResponse = self.call(
            "SubmitValidationReport", request, timeout=timeout
        )
        return response
