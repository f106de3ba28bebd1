"""`eventually`: wait for what another thread or process writes, instead of reading it once.

A server records its metrics, ends its spans and publishes its events after the
client already has its answer, and a consumer on another thread handles a message
some time after it was published. A test reads such a thing through `eventually`,
which repeats the read until its value satisfies `until` (by default: is truthy)
and returns that value, or fails after `timeout` showing the last value (or
re-raising the last AssertionError of a read that asserts). It waits; it never
asserts on how long that took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 30.0
_MAX_INTERVAL_SECONDS = 0.5


def eventually(
    read: Callable[[], T],
    *,
    until: Callable[[T], Any] = bool,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """The first value of `read()` for which `until(value)` holds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        else:
            if until(value):
                return value
            if time.monotonic() >= deadline:
                shown = repr(value)
                shown = shown if len(shown) <= 500 else shown[:497] + "..."
                raise AssertionError(f"{what or 'the awaited value'} did not come within {timeout:g} s; last: {shown}")
        time.sleep(interval)
        interval = min(interval * 2, _MAX_INTERVAL_SECONDS)
