"""UrzaHub: the in-process Urza, over a metadata database and an object store.

Every state change happens in one database transaction, so nothing half-written
is ever visible. Artifact bytes are written to the store before the row that
points at them, under a key that includes their SHA-256: a row never points at
bytes that are missing or that a racing upload replaced.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from esper.errors import AlreadyExists, DataLoss
from esper.ir import ir_sha256, parameter_count
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.observability import metrics
from esper.paging import encode_page_token
from esper.trust.caller import CALLER
from esper.urza import catalog, compile_queue, validation_queue
from esper.urza import requests as checks
from esper.urza.artifacts import check_uploaded_artifact, new_kernel_row
from esper.urza.config import UrzaConfig
from esper.urza.convert import (
    Row,
    blueprint_to_proto,
    blueprint_values,
    ir_from_row,
    job_to_proto,
    timestamp_from_us,
)
from esper.urza.db import UrzaDatabase, blueprints, compile_jobs
from esper.urza.leases import US_PER_SECOND
from esper.urza.quota import SubmissionQuota
from esper.urza.store import ObjectMissing, ObjectStore, open_object_store

if TYPE_CHECKING:
    from esper.trust.kernel_signing import TrustedSigners

logger = logging.getLogger(__name__)

_JOB_STATE = kernel_pb2.CompileJobStatus

# Microseconds since the Unix epoch; injectable so tests can expire leases without sleeping.
Clock = Callable[[], int]


def system_clock_us() -> int:
    return time.time_ns() // 1000


class UrzaHub:
    """Implements UrzaServiceApi: blueprints, kernels and the compile and validation queues."""

    def __init__(
        self,
        database: UrzaDatabase,
        store: ObjectStore,
        config: UrzaConfig,
        *,
        clock: Clock = system_clock_us,
        trust: TrustedSigners | None = None,
    ) -> None:
        self.database = database
        self.store = store
        self.config = config
        self._now = clock
        self._trust = trust
        self._quota = SubmissionQuota(config.blueprint_quota, config.blueprint_quota_window_seconds, clock)
        metrics.URZA_COMPILE_JOBS.register(self)

    @classmethod
    def open(
        cls, config: UrzaConfig, *, clock: Clock = system_clock_us, trust: TrustedSigners | None = None
    ) -> UrzaHub:
        """Connect to the database (checking or creating its schema) and open the store.

        With `trust`, a completed compile job must carry a signature by one of its keys.
        """
        database = UrzaDatabase.open(config.database_url)
        try:
            store = open_object_store(config)
        except BaseException:
            database.close()
            raise
        logger.info("Urza on %s, artifacts in %s", database.safe_url, config.store)
        return cls(database, store, config, clock=clock, trust=trust)

    def close(self) -> None:
        metrics.URZA_COMPILE_JOBS.unregister(self)
        self.database.close()

    # Blueprints

    def create_blueprint(self, request: urza_pb2.CreateBlueprintRequest) -> urza_pb2.CreateBlueprintResponse:
        checks.check_create_blueprint(request)
        digest = ir_sha256(request.ir)
        blueprint_id = "bp-" + digest[:16]
        with self.database.read() as conn:
            existing = _find_blueprint(conn, blueprint_id)
        if existing is not None:
            return self._existing_blueprint(existing, digest)
        self._quota.charge(CALLER.get())
        now = self._now()
        blueprint = blueprint_pb2.Blueprint(
            blueprint_id=blueprint_id,
            template_id=request.template_id,
            name=request.name,
            tier=request.tier,
            ir=request.ir,
            ir_sha256=digest,
            status=blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED,
            parameter_estimate=parameter_count(request.ir),
            tags=request.tags,
            create_time=timestamp_from_us(now),
            update_time=timestamp_from_us(now),
        )
        pipelines = list(request.pipelines) or list(self.config.default_pipelines)
        jobs = compile_queue.new_job_values(
            blueprint_id, pipelines, max_attempts=self.config.compile_max_attempts, now_us=now
        )

        def insert(conn: Connection) -> Row | None:
            found = _find_blueprint(conn, blueprint_id)
            if found is None:
                conn.execute(blueprints.insert().values(**blueprint_values(blueprint)))
                conn.execute(compile_jobs.insert(), jobs)
            return found

        try:
            existing = self.database.transact(insert)
        except IntegrityError:
            # Another submission of the same IR committed first.
            with self.database.read() as conn:
                existing = catalog.get_blueprint_row(conn, blueprint_id)
        if existing is not None:
            return self._existing_blueprint(existing, digest)
        logger.info("blueprint %s submitted, %d compile jobs queued", blueprint_id, len(jobs))
        return urza_pb2.CreateBlueprintResponse(blueprint=blueprint, created=True)

    @staticmethod
    def _existing_blueprint(row: Row, digest: str) -> urza_pb2.CreateBlueprintResponse:
        if row["ir_sha256"] != digest:
            raise AlreadyExists(
                f"blueprint id {row['blueprint_id']} is taken by an IR with another hash",
                reason="ALREADY_EXISTS",
            )
        return urza_pb2.CreateBlueprintResponse(blueprint=blueprint_to_proto(row), created=False)

    def get_blueprint(self, request: urza_pb2.GetBlueprintRequest) -> urza_pb2.GetBlueprintResponse:
        checks.check_get_blueprint(request)
        with self.database.read() as conn:
            row = catalog.get_blueprint_row(conn, request.blueprint_id)
            kernels = catalog.kernel_protos(conn, catalog.kernel_rows_of(conn, request.blueprint_id))
            jobs = [job_to_proto(job) for job in catalog.job_rows_of(conn, request.blueprint_id)]
        return urza_pb2.GetBlueprintResponse(blueprint=blueprint_to_proto(row), kernels=kernels, compile_jobs=jobs)

    def list_blueprints(self, request: urza_pb2.ListBlueprintsRequest) -> urza_pb2.ListBlueprintsResponse:
        page = checks.check_list_blueprints(request)
        with self.database.read() as conn:
            rows, more = catalog.list_blueprint_rows(conn, status=request.status, offset=page.offset, limit=page.size)
        return urza_pb2.ListBlueprintsResponse(
            blueprints=[blueprint_to_proto(row) for row in rows],
            next_page_token=_next_token(page, len(rows), more),
        )

    # Kernels

    def query_kernels(self, request: urza_pb2.QueryKernelsRequest) -> urza_pb2.QueryKernelsResponse:
        page = checks.check_query_kernels(request)
        with self.database.read() as conn:
            rows, more, total = catalog.query_kernel_rows(conn, request.query, offset=page.offset, limit=page.size)
            kernels = catalog.kernel_protos(conn, rows)
        result = kernel_pb2.KernelQueryResult(
            kernels=kernels, next_page_token=_next_token(page, len(rows), more), total_size=total
        )
        return urza_pb2.QueryKernelsResponse(result=result)

    def get_kernel(self, request: urza_pb2.GetKernelRequest) -> urza_pb2.GetKernelResponse:
        checks.check_get_kernel(request)
        with self.database.read() as conn:
            (kernel,) = catalog.kernel_protos(conn, [catalog.get_kernel_row(conn, request.kernel_id)])
        return urza_pb2.GetKernelResponse(kernel=kernel)

    def download_kernel(self, request: urza_pb2.DownloadKernelRequest) -> Iterator[urza_pb2.DownloadKernelResponse]:
        """Validates the request and checks the stored size at call time; the iterator then reads
        the artifact from the store one chunk at a time (a download never holds the artifact whole)
        and hashes it on the way: the last chunk is sent only once the SHA-256 matches, DataLoss
        instead."""
        chunk_size = checks.check_download_kernel(request, default_chunk=self.config.chunk_size)
        with self.database.read() as conn:
            row = catalog.get_kernel_row(conn, request.kernel_id)
            (kernel,) = catalog.kernel_protos(conn, [row])
        try:
            size = self.store.size(row["object_key"])
        except ObjectMissing as exc:
            raise _corrupted(row, "its artifact is missing from the store") from exc
        if size != row["size_bytes"]:
            raise _corrupted(row, f"the store holds {size} bytes, expected {row['size_bytes']}")
        metrics.URZA_KERNEL_DOWNLOADS.inc()
        return self._stream(row, kernel, chunk_size)

    def _stream(
        self, row: Row, kernel: kernel_pb2.KernelArtifact, chunk_size: int
    ) -> Iterator[urza_pb2.DownloadKernelResponse]:
        digest = hashlib.sha256()
        held: urza_pb2.DownloadKernelResponse | None = None
        offset = 0
        try:
            for piece in self.store.read_chunks(row["object_key"], chunk_size):
                if held is not None:
                    yield held
                digest.update(piece)
                held = urza_pb2.DownloadKernelResponse(
                    chunk_data=piece, offset=offset, total_size=kernel.size_bytes, sha256=kernel.sha256
                )
                if offset == 0:
                    held.kernel.CopyFrom(kernel)
                offset += len(piece)
        except ObjectMissing as exc:
            raise _corrupted(row, "its artifact is missing from the store") from exc
        actual = digest.hexdigest()
        if actual != row["sha256"] or offset != row["size_bytes"]:
            logger.error("kernel %s: stored bytes are corrupted (sha256 %s)", row["kernel_id"], actual)
            raise _corrupted(row, f"stored bytes have sha256 {actual}, expected {row['sha256']}")
        if held is not None:
            yield held

    # Compile queue (Tezzeret)

    def claim_compile_job(self, request: urza_pb2.ClaimCompileJobRequest) -> urza_pb2.ClaimCompileJobResponse:
        lease_seconds = checks.check_claim_compile_job(request, default_lease=self.config.default_lease_seconds)
        now = self._now()

        def lease(conn: Connection) -> urza_pb2.ClaimCompileJobResponse:
            row = compile_queue.claim_job(
                conn,
                worker_id=request.worker_id,
                pipelines=list(request.pipelines),
                lease_us=lease_seconds * US_PER_SECOND,
                now_us=now,
                preferred=list(request.preferred_blueprint_ids),
            )
            response = urza_pb2.ClaimCompileJobResponse(queue_depth=compile_queue.queue_depth(conn))
            if row is not None:
                ir = ir_from_row(catalog.get_blueprint_row(conn, row["blueprint_id"]))
                response.job.CopyFrom(job_to_proto(row, ir=ir, with_lease=True))
            return response

        response = self.database.transact(lease)
        if response.HasField("job"):
            job = response.job
            logger.info("compile job %s leased to %s (attempt %d)", job.job_id, job.worker_id, job.attempts)
        return response

    def complete_compile_job(self, request: urza_pb2.CompleteCompileJobRequest) -> urza_pb2.CompleteCompileJobResponse:
        checks.check_complete_compile_job(request)
        sha256 = hashlib.sha256(request.artifact).hexdigest()
        now = self._now()
        kernel_id = request.kernel.kernel_id
        with self.database.read() as conn:
            job = compile_queue.get_job(conn, request.job_id)
            blueprint = catalog.get_blueprint_row(conn, job["blueprint_id"])
            kernel_row = new_kernel_row(request, job, blueprint, sha256=sha256, now_us=now)
            check_uploaded_artifact(request, job["pipeline"], sha256, self._trust)
            outcome = compile_queue.completion_outcome(
                job,
                compile_queue.find_kernel_row(conn, kernel_id),
                kernel_id=kernel_id,
                sha256=sha256,
                lease_token=request.lease_token,
                now_us=now,
            )
        if outcome == "store":
            self.store.put(kernel_row["object_key"], request.artifact)

        # A slow upload may outlive the lease: check it again at the time of the commit.
        finished_us = self._now()

        def finish(conn: Connection) -> kernel_pb2.KernelArtifact:
            compile_queue.finish_job(
                conn,
                job_id=request.job_id,
                lease_token=request.lease_token,
                kernel_row=kernel_row,
                now_us=finished_us,
            )
            (kernel,) = catalog.kernel_protos(conn, [catalog.get_kernel_row(conn, kernel_id)])
            return kernel

        kernel = self.database.transact(finish)
        logger.info("compile job %s produced kernel %s (%d bytes)", request.job_id, kernel_id, kernel.size_bytes)
        return urza_pb2.CompleteCompileJobResponse(kernel=kernel)

    def fail_compile_job(self, request: urza_pb2.FailCompileJobRequest) -> urza_pb2.FailCompileJobResponse:
        checks.check_fail_compile_job(request)
        now = self._now()

        def record(conn: Connection) -> kernel_pb2.CompileJob:
            row = compile_queue.fail_job(
                conn,
                job_id=request.job_id,
                lease_token=request.lease_token,
                message=request.error_message,
                retryable=request.retryable,
                now_us=now,
                interrupted=request.interrupted,
            )
            return job_to_proto(row)

        return urza_pb2.FailCompileJobResponse(job=self.database.transact(record))

    def compile_job_counts(self) -> dict[str, int]:
        """Compile jobs by state name without its prefix (QUEUED, RUNNING, ...), zeros included."""
        with self.database.read() as conn:
            counts = compile_queue.job_counts(conn)
        states = [value for value in kernel_pb2.CompileJobStatus.values() if value]
        return {_JOB_STATE.Name(state).removeprefix("COMPILE_JOB_STATUS_"): counts.get(state, 0) for state in states}

    def get_compile_job(self, request: urza_pb2.GetCompileJobRequest) -> urza_pb2.GetCompileJobResponse:
        checks.check_get_compile_job(request)
        with self.database.read() as conn:
            row = compile_queue.get_job(conn, request.job_id)
        return urza_pb2.GetCompileJobResponse(job=job_to_proto(row))

    def list_compile_jobs(self, request: urza_pb2.ListCompileJobsRequest) -> urza_pb2.ListCompileJobsResponse:
        page = checks.check_list_compile_jobs(request)
        with self.database.read() as conn:
            rows, more = catalog.list_job_rows(conn, status=request.status, offset=page.offset, limit=page.size)
        return urza_pb2.ListCompileJobsResponse(
            jobs=[job_to_proto(row) for row in rows], next_page_token=_next_token(page, len(rows), more)
        )

    # Validation queue (Urabrask)

    def claim_validation_job(self, request: urza_pb2.ClaimValidationJobRequest) -> urza_pb2.ClaimValidationJobResponse:
        lease_seconds = checks.check_claim_validation_job(request, default_lease=self.config.default_lease_seconds)
        now = self._now()

        def lease(conn: Connection) -> urza_pb2.ClaimValidationJobResponse:
            row = validation_queue.claim_kernel(
                conn,
                worker_id=request.worker_id,
                lease_us=lease_seconds * US_PER_SECOND,
                now_us=now,
                hardware_target=request.hardware_target,
            )
            if row is None:
                return urza_pb2.ClaimValidationJobResponse()
            (kernel,) = catalog.kernel_protos(conn, [row])
            ir = ir_from_row(catalog.get_blueprint_row(conn, row["blueprint_id"]))
            return urza_pb2.ClaimValidationJobResponse(kernel=kernel, ir=ir, lease_token=row["lease_token"])

        response = self.database.transact(lease)
        if response.HasField("kernel"):
            logger.info("kernel %s leased for validation to %s", response.kernel.kernel_id, request.worker_id)
        return response

    def submit_validation_report(
        self, request: urza_pb2.SubmitValidationReportRequest
    ) -> urza_pb2.SubmitValidationReportResponse:
        checks.check_submit_validation_report(request)
        now = self._now()

        def record(conn: Connection) -> kernel_pb2.KernelArtifact:
            validation_queue.record_report(
                conn,
                kernel_id=request.kernel_id,
                lease_token=request.lease_token,
                report=request.report,
                now_us=now,
            )
            (kernel,) = catalog.kernel_protos(conn, [catalog.get_kernel_row(conn, request.kernel_id)])
            return kernel

        return urza_pb2.SubmitValidationReportResponse(kernel=self.database.transact(record))


def _find_blueprint(conn: Connection, blueprint_id: str) -> Row | None:
    query = blueprints.select().where(blueprints.c.blueprint_id == blueprint_id)
    row: Row | None = conn.execute(query).mappings().first()
    return row


def _next_token(page: checks.Page, returned: int, more: bool) -> str:
    return encode_page_token(page.offset + returned, page.fingerprint) if more else ""


def _corrupted(row: Row, detail: str) -> DataLoss:
    return DataLoss(f"kernel {row['kernel_id']}: {detail}", reason="CHECKSUM_MISMATCH")
