"""What a compile worker reports about itself: counters, mode, current and recent jobs.

The worker thread writes it and the status rpcs read it, so every access takes the
lock and readers get copies. Jobs are kept without their IR and lease token: the
status is read-only and unauthenticated, and a lease token proves the lease.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from google.protobuf import timestamp_pb2

from esper.leyline.v1 import kernel_pb2, tezzeret_pb2


class WorkerState:
    """Thread-safe status of one worker; `recent_limit` bounds the job history."""

    def __init__(
        self,
        worker_id: str,
        toolchain_hash: str,
        *,
        recent_limit: int,
        conservative_threshold: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._recent_limit = recent_limit
        self._threshold = conservative_threshold
        self._status = tezzeret_pb2.GetWorkerStatusResponse(worker_id=worker_id, toolchain_hash=toolchain_hash)
        self._status.start_time.CopyFrom(_timestamp(clock()))
        self._jobs: OrderedDict[str, kernel_pb2.CompileJob] = OrderedDict()

    @property
    def conservative_mode(self) -> bool:
        with self._lock:
            return self._status.conservative_mode

    def observe_queue(self, depth: int) -> bool:
        """Record the queue depth Urza reported; returns whether the worker is now conservative."""
        with self._lock:
            self._status.queue_depth = depth
            self._status.conservative_mode = depth > self._threshold
            return self._status.conservative_mode

    def job_started(self, job: kernel_pb2.CompileJob, *, recovered: bool) -> None:
        with self._lock:
            public = _public(job)
            self._status.current_job.CopyFrom(public)
            if recovered:
                self._status.jobs_recovered += 1
            self._remember(public)

    def job_succeeded(self, job: kernel_pb2.CompileJob, kernel_id: str) -> None:
        with self._lock:
            public = _public(job)
            public.status = kernel_pb2.COMPILE_JOB_STATUS_SUCCEEDED
            public.kernel_id = kernel_id
            public.update_time.CopyFrom(_timestamp(self._clock()))
            self._status.jobs_succeeded += 1
            self._finish(public)

    def attempt_failed(self, job_after: kernel_pb2.CompileJob) -> None:
        """An attempt failed; `job_after` is the job as Urza returned it (QUEUED again or FAILED)."""
        with self._lock:
            self._status.attempts_failed += 1
            self._finish(_public(job_after))

    def job_abandoned(self, job: kernel_pb2.CompileJob, reason: str) -> None:
        with self._lock:
            public = _public(job)
            public.last_error = reason
            self._finish(public)

    def status(self) -> tezzeret_pb2.GetWorkerStatusResponse:
        with self._lock:
            copy = tezzeret_pb2.GetWorkerStatusResponse()
            copy.CopyFrom(self._status)
            return copy

    def jobs_newest_first(self) -> list[kernel_pb2.CompileJob]:
        with self._lock:
            return [_copy(job) for job in reversed(self._jobs.values())]

    def _finish(self, job: kernel_pb2.CompileJob) -> None:
        if self._status.current_job.job_id == job.job_id:
            self._status.ClearField("current_job")
        self._remember(job)

    def _remember(self, job: kernel_pb2.CompileJob) -> None:
        self._jobs.pop(job.job_id, None)
        self._jobs[job.job_id] = job
        while len(self._jobs) > self._recent_limit:
            self._jobs.popitem(last=False)


def _public(job: kernel_pb2.CompileJob) -> kernel_pb2.CompileJob:
    public = _copy(job)
    public.ClearField("ir")
    public.ClearField("lease_token")
    return public


def _copy(job: kernel_pb2.CompileJob) -> kernel_pb2.CompileJob:
    copy = kernel_pb2.CompileJob()
    copy.CopyFrom(job)
    return copy


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
