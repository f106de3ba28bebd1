"""The compile worker: claim a job from Urza, compile it, sign and upload the artifact, log every step.

Every step is in the write-ahead log before the worker relies on it, and artifacts
reach their final name only by an atomic rename after an fsync. A worker killed at
any point, restarted with the same worker id, finds the job in its log: Urza hands
the job back (its own RUNNING job comes first), and the worker uploads the
artifact it already has, finishes with the one Urza already has, or compiles
again. Nothing is stored twice and no half-written file survives a restart.

The worker runs in its own thread (`run_forever`), so whoever trains never waits
for a compiler.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from esper.errors import AlreadyExists, EsperError, FailedPrecondition, InvalidArgument, NotFound
from esper.fsutil import fsync_directory
from esper.ir import ir_sha256
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.observability import metrics
from esper.observability.spans import tracer
from esper.pipelines import pipeline_name
from esper.tezzeret.config import FAST, TezzeretConfig
from esper.tezzeret.pipelines import CompiledKernel, CompileError, CompileInterrupted, compile_blueprint
from esper.tezzeret.state import WorkerState
from esper.tezzeret.toolchain import kernel_id, toolchain_hash
from esper.tezzeret.wal import PendingJob, WriteAheadLog
from esper.trust.kernel_signing import KernelSigner
from esper.urza.fetch import download_kernel_bytes

logger = logging.getLogger(__name__)
_TRACER = tracer(__name__)

Compiler = Callable[..., CompiledKernel]
# Compact the log once this many records were appended and no job is in flight.
_COMPACT_AFTER_RECORDS = 1000
_MAX_BACKOFF_SECONDS = 30.0
FAULT_EXIT_STATUS = 3


class TezzeretWorker:
    """Claims compile jobs from `urza` and turns them into kernel artifacts."""

    def __init__(
        self,
        urza: UrzaServiceApi,
        config: TezzeretConfig,
        *,
        compiler: Compiler = compile_blueprint,
        exit_process: Callable[[int], None] = os._exit,
        signer: KernelSigner | None = None,
        preferred: Callable[[], Sequence[str]] | None = None,
        toolchain: str | None = None,
    ) -> None:
        self.urza = urza
        self.config = config
        self.signer = signer
        # The blueprints to compile before any other (a run's own, best first), asked at every claim.
        self._preferred = preferred
        # The hash reads the C++ compiler through Inductor, whose import takes seconds: a caller
        # that must not pay for it here computes it elsewhere (ForkedCompiler.toolchain_hash).
        self.toolchain = toolchain if toolchain is not None else toolchain_hash(config)
        self.state = WorkerState(
            config.worker_id,
            self.toolchain,
            recent_limit=config.recent_jobs_limit,
            conservative_threshold=config.conservative_queue_threshold,
        )
        self.wal = WriteAheadLog(config.wal_path)
        self._compile = compiler
        self._exit = exit_process
        for pipeline in config.pipelines:
            # Series that exist from the start let increase() see the first retry.
            for counter in (
                metrics.TEZZERET_COMPILE_ATTEMPTS,
                metrics.TEZZERET_COMPILE_RETRIES,
                metrics.TEZZERET_COMPILE_FAILURES,
            ):
                counter.labels(pipeline=pipeline_name(pipeline))
        try:
            self._pending = self._recover()
        except BaseException:
            self.wal.close()
            raise

    def close(self) -> None:
        """Release the write-ahead log; call once the worker loop has stopped."""
        self.wal.close()

    @property
    def pending_jobs(self) -> dict[str, PendingJob]:
        """Jobs claimed and not yet finished, as the write-ahead log has them."""
        return dict(self._pending)

    def run_forever(self, stop: threading.Event) -> None:
        """Claim and compile until `stop` is set; Urza being unreachable only slows the polling."""
        poll = self.config.poll_interval_seconds
        backoff = poll
        while not stop.is_set():
            try:
                worked = self.run_once()
                backoff = poll
            except EsperError as exc:
                logger.warning("Urza call failed (%s: %s); retrying in %.1f s", exc.code, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            except Exception:
                logger.exception("compile worker step failed; retrying in %.1f s", poll)
                worked = False
            if not worked:
                stop.wait(poll)

    def run_once(self) -> bool:
        """Claim one job and process it; False when there was nothing to claim."""
        response = self._claim()
        job = response.job if response.HasField("job") else None
        self._forget_stale(job.job_id if job is not None else None)
        if job is None:
            self._maybe_compact()
            return False
        with _TRACER.start_as_current_span(
            "tezzeret.compile",
            attributes={
                "esper.job_id": job.job_id,
                "esper.blueprint_id": job.blueprint_id,
                "esper.pipeline": kernel_pb2.CompilationPipeline.Name(job.pipeline),
                "esper.attempt": job.attempts,
            },
        ):
            self._process(job)
        self._maybe_compact()
        return True

    # Claiming

    def _claim(self) -> urza_pb2.ClaimCompileJobResponse:
        """Conservative mode asks for FAST jobs first. It falls back to any allowed pipeline when
        there is none, because workers that only waited for FAST jobs would never shorten a queue
        of other jobs. With jobs to resume it asks for every pipeline, so Urza can hand them back."""
        pipelines = self.config.pipelines
        if self.state.conservative_mode and FAST in pipelines and not self._pending:
            response = self._claim_for((FAST,))
            if response.HasField("job"):
                return response
        return self._claim_for(pipelines)

    def _claim_for(self, pipelines: tuple[int, ...]) -> urza_pb2.ClaimCompileJobResponse:
        request = urza_pb2.ClaimCompileJobRequest(
            worker_id=self.config.worker_id,
            pipelines=pipelines,  # type: ignore[arg-type]
            lease_seconds=self.config.lease_seconds,
            preferred_blueprint_ids=list(self._preferred()) if self._preferred is not None else [],
        )
        response = self.urza.claim_compile_job(request)
        was_conservative = self.state.conservative_mode
        if self.state.observe_queue(response.queue_depth) != was_conservative:
            logger.info(
                "%s conservative mode (FAST jobs first): %d jobs queued, threshold %d",
                "leaving" if was_conservative else "entering",
                response.queue_depth,
                self.config.conservative_queue_threshold,
            )
        return response

    # One job

    def _process(self, job: kernel_pb2.CompileJob) -> None:
        recovered = self._pending.get(job.job_id)
        if recovered is not None:
            logger.info("resuming job %s from the write-ahead log (attempt %d)", job.job_id, job.attempts)
        self.state.job_started(job, recovered=recovered is not None)
        _count_attempt(job)
        self.wal.claimed(
            job.job_id,
            lease_token=job.lease_token,
            attempt=job.attempts,
            pipeline=job.pipeline,
            blueprint_id=job.blueprint_id,
        )
        claim = PendingJob(job.job_id, job.lease_token, job.attempts, job.pipeline, job.blueprint_id)
        self._pending[job.job_id] = (
            replace(recovered, lease_token=job.lease_token, attempt=job.attempts) if recovered else claim
        )
        self._fault("claimed")
        try:
            kernel, data = self._artifact_for(job, recovered=recovered is not None)
        except CompileError as exc:
            self._report_failure(job, exc)
            return
        self._upload(job, kernel, data)

    def _artifact_for(self, job: kernel_pb2.CompileJob, *, recovered: bool) -> tuple[kernel_pb2.KernelArtifact, bytes]:
        """The job's artifact: the one already compiled here, the one Urza already has, or a new one."""
        pending = self._pending[job.job_id]
        try:
            digest = ir_sha256(job.ir)
            expected_id = kernel_id(digest, self.config.hardware_target, job.pipeline, self.toolchain)
        except EsperError as exc:
            raise CompileError(f"invalid IR: {exc}", retryable=False) from exc
        if pending.compiled and pending.kernel is not None and pending.kernel_id == expected_id:
            data = _read_verified(Path(pending.artifact_path), pending.sha256)
            if data is not None:
                logger.info("job %s: uploading kernel %s compiled before a restart", job.job_id, expected_id)
                return pending.kernel, data
        if recovered:
            stored = self._stored_kernel(expected_id)
            if stored is not None:
                logger.info("job %s: Urza already has kernel %s; finishing with it", job.job_id, expected_id)
                return stored
        return self._compile_and_keep(job)

    def _compile_and_keep(self, job: kernel_pb2.CompileJob) -> tuple[kernel_pb2.KernelArtifact, bytes]:
        try:
            compiled = self._compile(
                job.ir, job.pipeline, self.config, blueprint_id=job.blueprint_id, toolchain=self.toolchain
            )
        except CompileError:
            raise
        except Exception as exc:
            raise CompileError(f"compiler crashed: {type(exc).__name__}: {exc}") from exc
        logger.info(
            "job %s: compiled kernel %s in %.2f s (%s)",
            job.job_id,
            compiled.kernel.kernel_id,
            compiled.compile_seconds,
            "; ".join(compiled.notes),
        )
        path = self._write_artifact(compiled.kernel.kernel_id, compiled.artifact)
        sha256 = hashlib.sha256(compiled.artifact).hexdigest()
        self.wal.compiled(job.job_id, kernel=compiled.kernel, artifact_path=path, sha256=sha256)
        self._pending[job.job_id] = replace(
            self._pending[job.job_id],
            kernel_id=compiled.kernel.kernel_id,
            artifact_path=str(path),
            sha256=sha256,
            kernel=compiled.kernel,
        )
        self._fault("compiled")
        return compiled.kernel, compiled.artifact

    def _write_artifact(self, name: str, data: bytes) -> Path:
        """Write to a temporary file, fsync, then rename: the final name only ever holds whole files."""
        final = self.config.artifacts_dir / f"{name}.pt2"
        tmp = self.config.artifacts_dir / f".{name}.pt2.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._fault("tmp_written")
        os.replace(tmp, final)
        fsync_directory(final.parent)
        return final

    def _upload(self, job: kernel_pb2.CompileJob, kernel: kernel_pb2.KernelArtifact, data: bytes) -> None:
        request = urza_pb2.CompleteCompileJobRequest(
            job_id=job.job_id, lease_token=job.lease_token, kernel=kernel, artifact=data
        )
        if self.signer is not None:
            # Ed25519 is deterministic: signing again after a restart gives the same signature.
            request.kernel.signature.CopyFrom(self.signer.sign(kernel, hashlib.sha256(data).hexdigest()))
        try:
            try:
                self.urza.complete_compile_job(request)
            except AlreadyExists:
                # Another attempt stored different bytes under this id (an AOTInductor build is not
                # byte for byte reproducible); artifacts are immutable, so finish with the stored one.
                stored = self._stored_kernel(kernel.kernel_id)
                if stored is None:
                    raise
                request.kernel.CopyFrom(stored[0])
                request.artifact = stored[1]
                self.urza.complete_compile_job(request)
        except FailedPrecondition as exc:
            if exc.reason != "LEASE_LOST":
                raise
            self._abandon(job, f"lease lost before upload: {exc}")
            return
        except InvalidArgument as exc:
            # Uploading the same artifact again cannot help: fail the job with Urza's reason.
            self._report_failure(job, CompileError(f"Urza refused the kernel: {exc}", retryable=False))
            return
        self._fault("completed")
        self.wal.uploaded(job.job_id, kernel_id=kernel.kernel_id)
        self._drop_pending(job.job_id)
        self.state.job_succeeded(job, kernel.kernel_id)
        logger.info("job %s: kernel %s stored in Urza", job.job_id, kernel.kernel_id)

    def _report_failure(self, job: kernel_pb2.CompileJob, error: CompileError) -> None:
        message = str(error).strip() or type(error).__name__
        interrupted = isinstance(error, CompileInterrupted)
        if interrupted:
            logger.info("job %s: compile interrupted, queued again: %s", job.job_id, message)
        else:
            logger.warning(
                "job %s attempt %d failed (retryable=%s): %s", job.job_id, job.attempts, error.retryable, message
            )
        request = urza_pb2.FailCompileJobRequest(
            job_id=job.job_id,
            lease_token=job.lease_token,
            error_message=message,
            retryable=error.retryable,
            interrupted=interrupted,
        )
        try:
            response = self.urza.fail_compile_job(request)
        except FailedPrecondition as exc:
            if exc.reason != "LEASE_LOST":
                raise
            self._abandon(job, f"lease lost before reporting the failure: {exc}")
            return
        self.wal.failed(job.job_id, error=message, retryable=error.retryable)
        self._drop_pending(job.job_id)
        if interrupted:
            self.state.job_abandoned(response.job, message)
            return
        self.state.attempt_failed(response.job)
        metrics.TEZZERET_COMPILE_FAILURES.labels(pipeline=pipeline_name(job.pipeline)).inc()

    def _stored_kernel(self, kernel_id_: str) -> tuple[kernel_pb2.KernelArtifact, bytes] | None:
        try:
            data, kernel = download_kernel_bytes(self.urza, kernel_id_)
        except NotFound:
            return None
        return kernel, data

    # Recovery and bookkeeping

    def _recover(self) -> dict[str, PendingJob]:
        """Replay the log, delete every file the log does not vouch for, and compact the log."""
        self.config.artifacts_dir.mkdir(parents=True, exist_ok=True)
        pending = self.wal.replay()
        for job_id, job in list(pending.items()):
            if job.compiled and _read_verified(Path(job.artifact_path), job.sha256) is None:
                logger.warning("job %s: compiled artifact is missing or damaged; it will be rebuilt", job_id)
                pending[job_id] = replace(job, kernel_id="", artifact_path="", sha256="", kernel=None)
        keep = {Path(job.artifact_path).name for job in pending.values() if job.compiled}
        for path in self.config.artifacts_dir.iterdir():
            if path.name not in keep and path.is_file():
                logger.info("removing %s: no unfinished job owns it", path)
                path.unlink()
        self.wal.compact(pending)
        if pending:
            logger.info("write-ahead log: %d unfinished jobs to resume: %s", len(pending), ", ".join(pending))
        return pending

    def _forget_stale(self, claimed: str | None) -> None:
        """Urza hands a worker its own RUNNING jobs first, so once a claim returns nothing or a job
        that is not in the log, every logged job is no longer this worker's (its lease expired and
        another worker took it, or it failed meanwhile)."""
        if claimed is not None and claimed in self._pending:
            return
        for job_id in list(self._pending):
            self.wal.abandoned(job_id, reason="Urza no longer hands this job to this worker")
            self._drop_pending(job_id)
            logger.info("job %s from the write-ahead log is no longer ours; dropped", job_id)

    def _abandon(self, job: kernel_pb2.CompileJob, reason: str) -> None:
        logger.warning("job %s abandoned: %s", job.job_id, reason)
        self.wal.abandoned(job.job_id, reason=reason)
        self._drop_pending(job.job_id)
        self.state.job_abandoned(job, reason)

    def _drop_pending(self, job_id: str) -> None:
        job = self._pending.pop(job_id, None)
        if job is not None and job.artifact_path:
            Path(job.artifact_path).unlink(missing_ok=True)

    def _maybe_compact(self) -> None:
        if not self._pending and self.wal.appended_since_compaction >= _COMPACT_AFTER_RECORDS:
            self.wal.compact({})

    def _fault(self, stage: str) -> None:
        if self.config.fault_exit_after == stage:
            logger.critical("fault_exit_after=%s: exiting with status %d (drill)", stage, FAULT_EXIT_STATUS)
            self._exit(FAULT_EXIT_STATUS)


def _count_attempt(job: kernel_pb2.CompileJob) -> None:
    """Urza numbers a job's attempts from 1, counting every lease: a later one repeats an earlier
    attempt that failed or was abandoned by a worker that stopped."""
    pipeline = pipeline_name(job.pipeline)
    metrics.TEZZERET_COMPILE_ATTEMPTS.labels(pipeline=pipeline).inc()
    if job.attempts > 1:
        metrics.TEZZERET_COMPILE_RETRIES.labels(pipeline=pipeline).inc()


def _read_verified(path: Path, sha256: str) -> bytes | None:
    """The file's bytes if it exists and has `sha256`, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None
