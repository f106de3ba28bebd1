"""Kernels waiting for Urabrask: claim one for validation and record the verdict.

Same lease pattern as the compile queue: a worker's own VALIDATING kernel is
re-issued to it first, then the oldest COMPILED kernel (or a VALIDATING one whose
lease ran out); the lease is a compare-and-set on (status, lease token).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, delete, select, update

from esper.errors import NotFound
from esper.leyline.v1 import kernel_pb2
from esper.urza.convert import Row, timestamp_from_us
from esper.urza.db import kernel_tags, kernels, validation_reports
from esper.urza.leases import check_lease, claim_next, new_lease_token, same_token
from esper.urza.status import refresh_blueprint_status

logger = logging.getLogger(__name__)

_KERNEL = kernel_pb2.KernelStatus


def get_kernel_for_update(conn: Connection, kernel_id: str) -> Row:
    query = select(kernels).where(kernels.c.kernel_id == kernel_id).with_for_update(key_share=True)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no kernel {kernel_id!r}", reason="KERNEL_NOT_FOUND")
    return row


def claim_kernel(
    conn: Connection, *, worker_id: str, lease_us: int, now_us: int, hardware_target: str = ""
) -> Row | None:
    """Lease a kernel (built for `hardware_target`, when given) to validator `worker_id`; None when nothing waits."""
    c = kernels.c
    return claim_next(
        conn,
        kernels,
        held=_KERNEL.KERNEL_STATUS_VALIDATING,
        waiting=_KERNEL.KERNEL_STATUS_COMPILED,
        worker_id=worker_id,
        now_us=now_us,
        order=(c.create_us, c.kernel_id),
        lease=lambda row: _lease(conn, row, worker_id=worker_id, lease_us=lease_us, now_us=now_us),
        filters=(c.hardware_target == hardware_target,) if hardware_target else (),
    )


def _lease(conn: Connection, candidate: Row, *, worker_id: str, lease_us: int, now_us: int) -> Row | None:
    c = kernels.c
    result = conn.execute(
        update(kernels)
        .where(
            c.kernel_id == candidate["kernel_id"],
            c.status == candidate["status"],
            c.lease_token == candidate["lease_token"],
        )
        .values(
            status=_KERNEL.KERNEL_STATUS_VALIDATING,
            worker_id=worker_id,
            lease_token=new_lease_token(),
            lease_expire_us=now_us + lease_us,
            update_us=now_us,
        )
    )
    if result.rowcount != 1:
        return None
    return conn.execute(select(kernels).where(c.kernel_id == candidate["kernel_id"])).mappings().one()


def record_report(
    conn: Connection,
    *,
    kernel_id: str,
    lease_token: str,
    report: kernel_pb2.UrabraskValidationReport,
    now_us: int,
) -> None:
    """Store the report, copy its tags onto the kernel, and make it VALIDATED or REJECTED."""
    kernel = get_kernel_for_update(conn, kernel_id)
    finished = kernel["status"] in (_KERNEL.KERNEL_STATUS_VALIDATED, _KERNEL.KERNEL_STATUS_REJECTED)
    if finished and same_token(kernel["lease_token"], lease_token):
        return  # a retry of a report already recorded
    check_lease(
        what=f"validation of kernel {kernel_id}",
        holding=kernel["status"] == _KERNEL.KERNEL_STATUS_VALIDATING,
        stored_token=kernel["lease_token"],
        presented_token=lease_token,
        expire_us=kernel["lease_expire_us"],
        now_us=now_us,
    )
    stored = kernel_pb2.UrabraskValidationReport()
    stored.CopyFrom(report)
    stored.kernel_id = kernel_id
    if not stored.HasField("create_time"):
        stored.create_time.CopyFrom(timestamp_from_us(now_us))
    conn.execute(delete(validation_reports).where(validation_reports.c.kernel_id == kernel_id))
    conn.execute(
        validation_reports.insert().values(
            kernel_id=kernel_id,
            passed=stored.passed,
            report=stored.SerializeToString(deterministic=True),
            create_us=now_us,
        )
    )
    conn.execute(delete(kernel_tags).where(kernel_tags.c.kernel_id == kernel_id))
    tags = sorted(set(stored.tags))
    if tags:
        conn.execute(kernel_tags.insert(), [{"kernel_id": kernel_id, "tag": tag} for tag in tags])
    status = _KERNEL.KERNEL_STATUS_VALIDATED if stored.passed else _KERNEL.KERNEL_STATUS_REJECTED
    conn.execute(update(kernels).where(kernels.c.kernel_id == kernel_id).values(status=status, update_us=now_us))
    logger.info("kernel %s %s by %s", kernel_id, _KERNEL.Name(status), kernel["worker_id"])
    refresh_blueprint_status(conn, kernel["blueprint_id"], now_us)
