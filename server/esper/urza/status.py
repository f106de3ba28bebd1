"""A blueprint's status, derived from its compile jobs and kernels.

Derived inside every transaction that changes a job or a kernel, with the
blueprint row locked, so concurrent changes to two jobs of one blueprint can
never leave it with a status that neither of them alone would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urza.db import blueprints, compile_jobs, kernels, validation_reports

_BP = blueprint_pb2.BlueprintStatus
_JOB = kernel_pb2.CompileJobStatus
_KERNEL = kernel_pb2.KernelStatus
_PENDING_JOBS = frozenset({_JOB.COMPILE_JOB_STATUS_QUEUED, _JOB.COMPILE_JOB_STATUS_RUNNING})
MAX_FAILURE_REASON = 4096


@dataclass(frozen=True)
class JobFacts:
    pipeline: int
    status: int
    attempts: int
    last_error: str


@dataclass(frozen=True)
class KernelFacts:
    kernel_id: str
    status: int
    failure_reason: str


@dataclass(frozen=True)
class DerivedStatus:
    status: int
    failure_reason: str = ""


def derive_blueprint_status(
    current: int, jobs: Sequence[JobFacts], kernel_facts: Sequence[KernelFacts]
) -> DerivedStatus:
    """The status a blueprint has given its jobs and kernels; VALIDATED is never left."""
    if current == _BP.BLUEPRINT_STATUS_VALIDATED or any(
        kernel.status == _KERNEL.KERNEL_STATUS_VALIDATED for kernel in kernel_facts
    ):
        return DerivedStatus(_BP.BLUEPRINT_STATUS_VALIDATED)
    if any(job.status == _JOB.COMPILE_JOB_STATUS_RUNNING for job in jobs):
        return DerivedStatus(_BP.BLUEPRINT_STATUS_COMPILING)
    if any(job.status in _PENDING_JOBS for job in jobs):
        started = kernel_facts or any(job.attempts > 0 for job in jobs)
        return DerivedStatus(_BP.BLUEPRINT_STATUS_COMPILING if started else _BP.BLUEPRINT_STATUS_SUBMITTED)
    if kernel_facts and all(kernel.status == _KERNEL.KERNEL_STATUS_REJECTED for kernel in kernel_facts):
        reasons = [f"{kernel.kernel_id}: {kernel.failure_reason or 'rejected'}" for kernel in kernel_facts]
        return DerivedStatus(_BP.BLUEPRINT_STATUS_REJECTED, _join(reasons))
    if kernel_facts:
        return DerivedStatus(_BP.BLUEPRINT_STATUS_COMPILED)
    if jobs:
        reasons = [
            f"{kernel_pb2.CompilationPipeline.Name(job.pipeline)}: {job.last_error or 'failed'}"
            for job in jobs
            if job.status == _JOB.COMPILE_JOB_STATUS_FAILED
        ]
        return DerivedStatus(_BP.BLUEPRINT_STATUS_FAILED, _join(reasons) or "no pipeline produced a kernel")
    return DerivedStatus(_BP.BLUEPRINT_STATUS_SUBMITTED)


def refresh_blueprint_status(conn: Connection, blueprint_id: str, now_us: int) -> DerivedStatus:
    """Lock the blueprint, derive its status from what this transaction sees, and store it."""
    current = conn.execute(
        select(blueprints.c.status, blueprints.c.failure_reason)
        .where(blueprints.c.blueprint_id == blueprint_id)
        .with_for_update(key_share=True)
    ).one()
    job = compile_jobs.c
    job_rows = conn.execute(
        select(job.pipeline, job.status, job.attempts, job.last_error)
        .where(job.blueprint_id == blueprint_id)
        .order_by(job.pipeline)
    ).all()
    reports = kernels.outerjoin(validation_reports, validation_reports.c.kernel_id == kernels.c.kernel_id)
    kernel_rows = conn.execute(
        select(kernels.c.kernel_id, kernels.c.status, validation_reports.c.report)
        .select_from(reports)
        .where(kernels.c.blueprint_id == blueprint_id)
        .order_by(kernels.c.kernel_id)
    ).all()
    derived = derive_blueprint_status(
        current.status,
        [JobFacts(row.pipeline, row.status, row.attempts, row.last_error) for row in job_rows],
        [KernelFacts(row.kernel_id, row.status, _report_reason(row.report)) for row in kernel_rows],
    )
    if (derived.status, derived.failure_reason) != (current.status, current.failure_reason):
        conn.execute(
            update(blueprints)
            .where(blueprints.c.blueprint_id == blueprint_id)
            .values(status=derived.status, failure_reason=derived.failure_reason, update_us=now_us)
        )
    return derived


def _report_reason(report: bytes | None) -> str:
    if report is None:
        return ""
    return kernel_pb2.UrabraskValidationReport.FromString(bytes(report)).failure_reason


def _join(reasons: Sequence[str]) -> str:
    text = "; ".join(reasons)
    return text if len(text) <= MAX_FAILURE_REASON else text[: MAX_FAILURE_REASON - 3] + "..."
