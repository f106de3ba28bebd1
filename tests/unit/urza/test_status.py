"""Blueprint status derived from its jobs and kernels."""

from __future__ import annotations

import pytest

from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urza.status import DerivedStatus, JobFacts, KernelFacts, derive_blueprint_status

BP = blueprint_pb2.BlueprintStatus
J = kernel_pb2.CompileJobStatus
K = kernel_pb2.KernelStatus
FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
STANDARD = kernel_pb2.COMPILATION_PIPELINE_STANDARD


def job(status: int, attempts: int = 0, error: str = "", pipeline: int = FAST) -> JobFacts:
    return JobFacts(pipeline=pipeline, status=status, attempts=attempts, last_error=error)


def kernel(status: int, reason: str = "", kernel_id: str = "k1") -> KernelFacts:
    return KernelFacts(kernel_id=kernel_id, status=status, failure_reason=reason)


@pytest.mark.parametrize(
    ("jobs", "kernels", "expected"),
    [
        ([job(J.COMPILE_JOB_STATUS_QUEUED)], [], BP.BLUEPRINT_STATUS_SUBMITTED),
        (
            [job(J.COMPILE_JOB_STATUS_RUNNING, 1), job(J.COMPILE_JOB_STATUS_QUEUED)],
            [],
            BP.BLUEPRINT_STATUS_COMPILING,
        ),
        ([job(J.COMPILE_JOB_STATUS_QUEUED, attempts=1)], [], BP.BLUEPRINT_STATUS_COMPILING),
        (
            [job(J.COMPILE_JOB_STATUS_SUCCEEDED, 1), job(J.COMPILE_JOB_STATUS_QUEUED)],
            [kernel(K.KERNEL_STATUS_COMPILED)],
            BP.BLUEPRINT_STATUS_COMPILING,
        ),
        (
            [job(J.COMPILE_JOB_STATUS_SUCCEEDED, 1), job(J.COMPILE_JOB_STATUS_FAILED, 3)],
            [kernel(K.KERNEL_STATUS_COMPILED)],
            BP.BLUEPRINT_STATUS_COMPILED,
        ),
        (
            [job(J.COMPILE_JOB_STATUS_SUCCEEDED, 1), job(J.COMPILE_JOB_STATUS_RUNNING, 1)],
            [kernel(K.KERNEL_STATUS_VALIDATED)],
            BP.BLUEPRINT_STATUS_VALIDATED,
        ),
        (
            [job(J.COMPILE_JOB_STATUS_SUCCEEDED, 1)],
            [kernel(K.KERNEL_STATUS_REJECTED), kernel(K.KERNEL_STATUS_VALIDATING, kernel_id="k2")],
            BP.BLUEPRINT_STATUS_COMPILED,
        ),
    ],
)
def test_status_follows_jobs_and_kernels(jobs: list[JobFacts], kernels: list[KernelFacts], expected: int) -> None:
    assert derive_blueprint_status(BP.BLUEPRINT_STATUS_SUBMITTED, jobs, kernels).status == expected


def test_all_jobs_failed_is_failed_with_the_compiler_messages() -> None:
    jobs = [
        job(J.COMPILE_JOB_STATUS_FAILED, 3, "export failed", FAST),
        job(J.COMPILE_JOB_STATUS_FAILED, 1, "unsupported op", STANDARD),
    ]
    derived = derive_blueprint_status(BP.BLUEPRINT_STATUS_COMPILING, jobs, [])
    assert derived == DerivedStatus(
        BP.BLUEPRINT_STATUS_FAILED,
        "COMPILATION_PIPELINE_FAST: export failed; COMPILATION_PIPELINE_STANDARD: unsupported op",
    )


def test_all_kernels_rejected_with_nothing_pending_is_rejected() -> None:
    derived = derive_blueprint_status(
        BP.BLUEPRINT_STATUS_COMPILED,
        [job(J.COMPILE_JOB_STATUS_SUCCEEDED, 1)],
        [kernel(K.KERNEL_STATUS_REJECTED, "too slow")],
    )
    assert derived == DerivedStatus(BP.BLUEPRINT_STATUS_REJECTED, "k1: too slow")


def test_all_kernels_rejected_while_a_job_is_queued_keeps_compiling() -> None:
    derived = derive_blueprint_status(
        BP.BLUEPRINT_STATUS_COMPILED,
        [job(J.COMPILE_JOB_STATUS_SUCCEEDED, 1), job(J.COMPILE_JOB_STATUS_QUEUED, 1, pipeline=STANDARD)],
        [kernel(K.KERNEL_STATUS_REJECTED, "too slow")],
    )
    assert derived.status == BP.BLUEPRINT_STATUS_COMPILING


def test_validated_is_never_left() -> None:
    derived = derive_blueprint_status(
        BP.BLUEPRINT_STATUS_VALIDATED,
        [job(J.COMPILE_JOB_STATUS_RUNNING, 1)],
        [kernel(K.KERNEL_STATUS_REJECTED)],
    )
    assert derived == DerivedStatus(BP.BLUEPRINT_STATUS_VALIDATED)
