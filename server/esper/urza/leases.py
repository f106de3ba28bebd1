"""Work leases shared by the compile and validation queues."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, or_, select

from esper.errors import FailedPrecondition
from esper.urza.convert import Row

US_PER_SECOND = 1_000_000
# Bounds the work of one claim when many candidates are taken by others or given up first.
_MAX_CLAIM_STEPS = 64


def new_lease_token() -> str:
    return uuid.uuid4().hex


def same_token(stored: str, presented: str) -> bool:
    """Constant-time comparison: a lease token is a bearer credential for the work item."""
    return bool(stored) and hmac.compare_digest(stored.encode(), presented.encode())


def check_lease(
    *, what: str, holding: bool, stored_token: str, presented_token: str, expire_us: int, now_us: int
) -> None:
    """Raise FailedPrecondition(LEASE_LOST) unless `presented_token` is the live lease on `what`.

    `holding` says whether the item is in its leased state (RUNNING, VALIDATING) at all.
    """
    if not holding or not same_token(stored_token, presented_token):
        raise FailedPrecondition(
            f"{what}: the lease is not held by this token (it expired and was claimed again, "
            "or the work already finished)",
            reason="LEASE_LOST",
        )
    if expire_us < now_us:
        raise FailedPrecondition(
            f"{what}: the lease expired {(now_us - expire_us) / US_PER_SECOND:.1f} s ago", reason="LEASE_LOST"
        )


def claim_next(
    conn: Connection,
    table: Table,
    *,
    held: int,
    waiting: int,
    worker_id: str,
    now_us: int,
    order: Sequence[ColumnElement[Any]],
    lease: Callable[[Row], Row | None],
    filters: Sequence[ColumnElement[bool]] = (),
) -> Row | None:
    """The first row `lease` takes, in the order a claim owes them; None when there is none.

    `worker_id`'s own `held` row comes first (a restarted worker resumes it), then the
    oldest `waiting` row or `held` row whose lease ran out. `lease` returns None for a row
    it did not take (another worker took it first, or the row was given up), and the
    next candidate is tried. Rows locked by another transaction are skipped.
    """
    c = table.c
    own = (
        select(table)
        .where(c.status == held, c.worker_id == worker_id, *filters)
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True)
    )
    claimable = (
        select(table)
        .where(*filters, or_(c.status == waiting, and_(c.status == held, c.lease_expire_us < now_us)))
        .order_by(*order)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True)
    )
    mine = conn.execute(own).mappings().first()
    if mine is not None:
        leased = lease(mine)
        if leased is not None:
            return leased
    for _ in range(_MAX_CLAIM_STEPS):
        candidate = conn.execute(claimable).mappings().first()
        if candidate is None:
            return None
        leased = lease(candidate)
        if leased is not None:
            return leased
    return None
