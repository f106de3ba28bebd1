"""Per-identity quotas on blueprint submission.

Each mesh identity has a token bucket: `capacity` new blueprints at once, refilled at
`capacity / window_seconds` per second. Only a submission that creates a blueprint
costs a token; resubmitting an IR Urza already holds is free, so an idempotent retry
never exhausts a caller. Calls with no identity (in process, or a server started
without mTLS) are not limited: there is no one to hold to account.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from esper.errors import ResourceExhausted

# Identities are a small fixed set in a mesh; the cap only bounds memory against a flood
# of distinct certificates.
MAX_TRACKED_IDENTITIES = 1024


@dataclass
class _Bucket:
    tokens: float
    updated_us: int


class SubmissionQuota:
    """Token buckets keyed by caller identity; `charge` takes one token or refuses."""

    def __init__(self, capacity: int, window_seconds: float, clock_us: Callable[[], int]) -> None:
        self.capacity = capacity
        self._refill_per_us = capacity / (window_seconds * 1e6)
        self._clock_us = clock_us
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def charge(self, identity: str | None) -> None:
        """Take one submission from `identity`'s bucket; ResourceExhausted with a retry delay if empty."""
        if identity is None:
            return
        now = self._clock_us()
        with self._lock:
            bucket = self._buckets.pop(identity, None) or _Bucket(float(self.capacity), now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated_us) * self._refill_per_us)
            bucket.updated_us = now
            self._buckets[identity] = bucket
            while len(self._buckets) > MAX_TRACKED_IDENTITIES:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1.0:
                wait_seconds = (1.0 - bucket.tokens) / self._refill_per_us / 1e6
                raise ResourceExhausted(
                    f"{identity} has submitted its quota of {self.capacity} new blueprints; "
                    f"retry in {wait_seconds:.0f} s",
                    retry_after_seconds=wait_seconds,
                )
            bucket.tokens -= 1.0
