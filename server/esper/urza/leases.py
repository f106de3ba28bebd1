"""Work leases shared by the compile and validation queues."""

from __future__ import annotations

import hmac
import uuid

from esper.errors import FailedPrecondition

US_PER_SECOND = 1_000_000


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
