"""The Urza domain API: what other subsystems depend on, in-process or remote.

`UrzaHub` implements it in-process; `esper.clients.urza.UrzaClient` implements it
over gRPC. Each method is named after an `UrzaService` rpc and takes and returns
that rpc's request and response messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from esper.leyline.v1 import urza_pb2


class UrzaApi(Protocol):
    """Blueprints, kernels and the compile/validation work queues."""

    def create_blueprint(self, request: urza_pb2.CreateBlueprintRequest) -> urza_pb2.CreateBlueprintResponse:
        """Validate and store an IR, queue its compile jobs; idempotent by IR hash."""
        ...

    def get_blueprint(self, request: urza_pb2.GetBlueprintRequest) -> urza_pb2.GetBlueprintResponse:
        """A blueprint with its kernels and compile jobs."""
        ...

    def list_blueprints(self, request: urza_pb2.ListBlueprintsRequest) -> urza_pb2.ListBlueprintsResponse:
        """Blueprints newest first, paged."""
        ...

    def query_kernels(self, request: urza_pb2.QueryKernelsRequest) -> urza_pb2.QueryKernelsResponse:
        """Kernels matching a KernelQuery, newest first, paged."""
        ...

    def get_kernel(self, request: urza_pb2.GetKernelRequest) -> urza_pb2.GetKernelResponse:
        """One kernel's metadata."""
        ...

    def download_kernel(self, request: urza_pb2.DownloadKernelRequest) -> Iterator[urza_pb2.DownloadKernelResponse]:
        """A kernel's bytes in chunks, each carrying the artifact's SHA-256 and total size."""
        ...

    def claim_compile_job(self, request: urza_pb2.ClaimCompileJobRequest) -> urza_pb2.ClaimCompileJobResponse:
        """Lease the oldest claimable compile job (or re-issue the worker's own running one)."""
        ...

    def complete_compile_job(self, request: urza_pb2.CompleteCompileJobRequest) -> urza_pb2.CompleteCompileJobResponse:
        """Store a leased job's artifact and mark the job SUCCEEDED; idempotent by kernel id."""
        ...

    def fail_compile_job(self, request: urza_pb2.FailCompileJobRequest) -> urza_pb2.FailCompileJobResponse:
        """Record a failed attempt: QUEUED again while retries remain, else FAILED."""
        ...

    def get_compile_job(self, request: urza_pb2.GetCompileJobRequest) -> urza_pb2.GetCompileJobResponse:
        """One compile job."""
        ...

    def list_compile_jobs(self, request: urza_pb2.ListCompileJobsRequest) -> urza_pb2.ListCompileJobsResponse:
        """Compile jobs, oldest first, paged, optionally by status."""
        ...

    def claim_validation_job(self, request: urza_pb2.ClaimValidationJobRequest) -> urza_pb2.ClaimValidationJobResponse:
        """Lease the oldest COMPILED kernel to a validator, with the IR it came from."""
        ...

    def submit_validation_report(
        self, request: urza_pb2.SubmitValidationReportRequest
    ) -> urza_pb2.SubmitValidationReportResponse:
        """Record Urabrask's verdict: the kernel becomes VALIDATED or REJECTED."""
        ...
