"""The compile job queue in the database: claim, complete and fail, each in the caller's transaction.

Claims are safe under concurrency on both dialects: PostgreSQL skips rows another
transaction has locked (`FOR UPDATE SKIP LOCKED`), SQLite runs write transactions
one at a time, and the lease itself is a compare-and-set on (status, attempts),
so two workers can never hold the same job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from esper.errors import AlreadyExists, NotFound
from esper.leyline.v1 import kernel_pb2
from esper.pipelines import pipeline_name
from esper.urza.convert import Row
from esper.urza.db import compile_jobs, kernels
from esper.urza.leases import check_lease, claim_next, new_lease_token, same_token
from esper.urza.status import refresh_blueprint_status

logger = logging.getLogger(__name__)

_JOB = kernel_pb2.CompileJobStatus
MAX_ERROR_LENGTH = 16384


def job_id_for(blueprint_id: str, pipeline: int) -> str:
    return f"job-{blueprint_id}-{pipeline_name(pipeline)}"


def new_job_values(
    blueprint_id: str, pipelines: Sequence[int], *, max_attempts: int, now_us: int
) -> list[dict[str, Any]]:
    return [
        {
            "job_id": job_id_for(blueprint_id, pipeline),
            "blueprint_id": blueprint_id,
            "pipeline": int(pipeline),
            "status": _JOB.COMPILE_JOB_STATUS_QUEUED,
            "attempts": 0,
            "max_attempts": max_attempts,
            "last_error": "",
            "worker_id": "",
            "lease_token": "",
            "lease_expire_us": 0,
            "kernel_id": "",
            "create_us": now_us,
            "update_us": now_us,
        }
        for pipeline in pipelines
    ]


def get_job(conn: Connection, job_id: str, *, lock: bool = False) -> Row:
    query = select(compile_jobs).where(compile_jobs.c.job_id == job_id)
    row = conn.execute(query.with_for_update(key_share=True) if lock else query).mappings().first()
    if row is None:
        raise NotFound(f"no compile job {job_id!r}", reason="JOB_NOT_FOUND")
    return row


def queue_depth(conn: Connection) -> int:
    queued = compile_jobs.c.status == _JOB.COMPILE_JOB_STATUS_QUEUED
    count = conn.execute(select(func.count()).select_from(compile_jobs).where(queued)).scalar_one()
    return int(count)


def job_counts(conn: Connection) -> dict[int, int]:
    """Compile jobs by status value; statuses with no job are absent."""
    status = compile_jobs.c.status
    rows = conn.execute(select(status, func.count()).select_from(compile_jobs).group_by(status)).all()
    return {int(value): int(count) for value, count in rows}


def claim_job(
    conn: Connection,
    *,
    worker_id: str,
    pipelines: Sequence[int],
    lease_us: int,
    now_us: int,
    preferred: Sequence[str] = (),
) -> Row | None:
    """Lease a job to `worker_id`: its own RUNNING job first (a restarted worker resumes it),
    else a QUEUED job or RUNNING job whose lease ran out: first of the `preferred` blueprints
    (FAST before STANDARD before AGGRESSIVE, each in the order given), then the oldest.
    None when there is none."""
    c = compile_jobs.c
    filters = [c.pipeline.in_([int(p) for p in pipelines])] if pipelines else []

    def lease(row: Row) -> Row | None:
        return _lease_or_give_up(conn, row, worker_id=worker_id, lease_us=lease_us, now_us=now_us)

    common = {
        "held": _JOB.COMPILE_JOB_STATUS_RUNNING,
        "waiting": _JOB.COMPILE_JOB_STATUS_QUEUED,
        "worker_id": worker_id,
        "now_us": now_us,
        "lease": lease,
    }
    if preferred:
        rank = case({blueprint_id: index for index, blueprint_id in enumerate(preferred)}, value=c.blueprint_id)
        row = claim_next(
            conn,
            compile_jobs,
            order=(c.pipeline, rank, c.job_id),
            filters=(*filters, c.blueprint_id.in_(list(preferred))),
            **common,  # type: ignore[arg-type]
        )
        if row is not None:
            return row
    return claim_next(
        conn,
        compile_jobs,
        order=(c.create_us, c.pipeline, c.job_id),
        filters=filters,
        **common,  # type: ignore[arg-type]
    )


def _lease_or_give_up(conn: Connection, candidate: Row, *, worker_id: str, lease_us: int, now_us: int) -> Row | None:
    """Lease `candidate`, or FAIL it if it is RUNNING with no attempt left; None if not leased."""
    exhausted = candidate["attempts"] >= candidate["max_attempts"]
    if candidate["status"] == _JOB.COMPILE_JOB_STATUS_RUNNING and exhausted:
        _give_up_abandoned(conn, candidate, now_us)
        return None
    leased = _lease(conn, candidate, worker_id=worker_id, lease_us=lease_us, now_us=now_us)
    if leased is not None:
        refresh_blueprint_status(conn, leased["blueprint_id"], now_us)
    return leased


def _lease(conn: Connection, candidate: Row, *, worker_id: str, lease_us: int, now_us: int) -> Row | None:
    c = compile_jobs.c
    result = conn.execute(
        update(compile_jobs)
        .where(
            c.job_id == candidate["job_id"],
            c.status == candidate["status"],
            c.attempts == candidate["attempts"],
        )
        .values(
            status=_JOB.COMPILE_JOB_STATUS_RUNNING,
            attempts=c.attempts + 1,
            worker_id=worker_id,
            lease_token=new_lease_token(),
            lease_expire_us=now_us + lease_us,
            update_us=now_us,
        )
    )
    if result.rowcount != 1:
        return None
    return get_job(conn, candidate["job_id"])


def _give_up_abandoned(conn: Connection, job: Row, now_us: int) -> None:
    """A RUNNING job whose last allowed attempt was abandoned (lease expired or worker restarted)."""
    message = (
        f"attempt {job['attempts']} of {job['max_attempts']} was abandoned by worker {job['worker_id']!r} "
        "(its lease expired or it restarted)"
    )
    if job["last_error"]:
        message += f"; previous error: {job['last_error']}"
    c = compile_jobs.c
    conn.execute(
        update(compile_jobs)
        .where(c.job_id == job["job_id"], c.status == job["status"], c.attempts == job["attempts"])
        .values(status=_JOB.COMPILE_JOB_STATUS_FAILED, last_error=message[:MAX_ERROR_LENGTH], update_us=now_us)
    )
    logger.warning("compile job %s failed: %s", job["job_id"], message)
    refresh_blueprint_status(conn, job["blueprint_id"], now_us)


def completion_outcome(
    job: Row, existing_kernel: Row | None, *, kernel_id: str, sha256: str, lease_token: str, now_us: int
) -> str:
    """What a completion does: "store" a new kernel, "reuse" the identical stored one (the job
    finishes), or "done" (a retry of a completion that already went through). Raises LEASE_LOST
    or AlreadyExists (an artifact id is written once)."""
    retried = (
        job["status"] == _JOB.COMPILE_JOB_STATUS_SUCCEEDED
        and job["kernel_id"] == kernel_id
        and same_token(job["lease_token"], lease_token)
    )
    if retried and existing_kernel is not None:
        if existing_kernel["sha256"] != sha256:
            raise _immutable(kernel_id, existing_kernel["sha256"], sha256)
        return "done"
    check_lease(
        what=f"compile job {job['job_id']}",
        holding=job["status"] == _JOB.COMPILE_JOB_STATUS_RUNNING,
        stored_token=job["lease_token"],
        presented_token=lease_token,
        expire_us=job["lease_expire_us"],
        now_us=now_us,
    )
    if existing_kernel is None:
        return "store"
    if existing_kernel["sha256"] != sha256:
        raise _immutable(kernel_id, existing_kernel["sha256"], sha256)
    return "reuse"


def _immutable(kernel_id: str, stored: str, offered: str) -> AlreadyExists:
    return AlreadyExists(
        f"kernel {kernel_id} is already stored with sha256 {stored}, not {offered}; artifacts are "
        "immutable (a changed toolchain must produce a new kernel id)",
        reason="ALREADY_EXISTS",
    )


def find_kernel_row(conn: Connection, kernel_id: str) -> Row | None:
    return conn.execute(select(kernels).where(kernels.c.kernel_id == kernel_id)).mappings().first()


def finish_job(
    conn: Connection,
    *,
    job_id: str,
    lease_token: str,
    kernel_row: dict[str, Any],
    now_us: int,
) -> None:
    """Insert the kernel (unless identical bytes are already stored) and mark the job SUCCEEDED."""
    job = get_job(conn, job_id, lock=True)
    existing = find_kernel_row(conn, kernel_row["kernel_id"])
    outcome = completion_outcome(
        job,
        existing,
        kernel_id=kernel_row["kernel_id"],
        sha256=kernel_row["sha256"],
        lease_token=lease_token,
        now_us=now_us,
    )
    if outcome == "done":
        return
    if outcome == "store":
        conn.execute(kernels.insert().values(**kernel_row))
    conn.execute(
        update(compile_jobs)
        .where(compile_jobs.c.job_id == job_id)
        .values(status=_JOB.COMPILE_JOB_STATUS_SUCCEEDED, kernel_id=kernel_row["kernel_id"], update_us=now_us)
    )
    refresh_blueprint_status(conn, job["blueprint_id"], now_us)


def fail_job(
    conn: Connection,
    *,
    job_id: str,
    lease_token: str,
    message: str,
    retryable: bool,
    now_us: int,
    interrupted: bool = False,
) -> Row:
    """Record a failed attempt: QUEUED again while attempts remain and retrying can help, else FAILED.

    An `interrupted` attempt (the worker stopped mid-compile) is QUEUED again and not counted."""
    job = get_job(conn, job_id, lock=True)
    message = message[:MAX_ERROR_LENGTH]
    already_recorded = (
        job["status"] in (_JOB.COMPILE_JOB_STATUS_QUEUED, _JOB.COMPILE_JOB_STATUS_FAILED)
        and same_token(job["lease_token"], lease_token)
        and job["last_error"] == message
    )
    if already_recorded:
        return job
    check_lease(
        what=f"compile job {job_id}",
        holding=job["status"] == _JOB.COMPILE_JOB_STATUS_RUNNING,
        stored_token=job["lease_token"],
        presented_token=lease_token,
        expire_us=job["lease_expire_us"],
        now_us=now_us,
    )
    requeue = interrupted or (retryable and job["attempts"] < job["max_attempts"])
    status = _JOB.COMPILE_JOB_STATUS_QUEUED if requeue else _JOB.COMPILE_JOB_STATUS_FAILED
    attempts = max(0, job["attempts"] - 1) if interrupted else job["attempts"]
    conn.execute(
        update(compile_jobs)
        .where(compile_jobs.c.job_id == job_id)
        .values(status=status, attempts=attempts, last_error=message, update_us=now_us)
    )
    log = logger.info if requeue else logger.warning
    log("compile job %s attempt %d failed (%s): %s", job_id, job["attempts"], _JOB.Name(status), message)
    refresh_blueprint_status(conn, job["blueprint_id"], now_us)
    return get_job(conn, job_id)
