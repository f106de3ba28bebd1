"""Thread-safe counters, queue-depth tracking and the recent-keys filter shared by both buses."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Hashable

from esper.oona.api import AlertKind, AlertSink, BusAlert, BusStats

logger = logging.getLogger(__name__)

_COUNTERS = (
    "published",
    "publish_duplicates",
    "buffered",
    "flushed",
    "dropped",
    "handled",
    "handler_failures",
    "redelivered",
    "duplicates_dropped",
)


class Alerts:
    """Logs every alert and forwards it to the sink; a failing sink never breaks the bus."""

    def __init__(self, sink: AlertSink | None) -> None:
        self._sink = sink

    def raise_alert(self, kind: AlertKind, message: str, subject: str = "") -> None:
        calm = kind in (AlertKind.CONSERVATIVE_OFF, AlertKind.RECONNECTED)
        level = logging.INFO if calm else logging.WARNING
        logger.log(level, "oona %s: %s", kind.value, message)
        if self._sink is None:
            return
        try:
            self._sink(BusAlert(kind, message, subject))
        except Exception:
            logger.exception("oona alert sink failed on %s", kind.value)


class BusCounters:
    """The counters of `BusStats`, plus queue depth per consumer level and the conservative flag."""

    def __init__(self, conservative_queue_depth: int, alerts: Alerts) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._dead_lettered: Counter[str] = Counter()
        self._depths: dict[Hashable, int] = {}
        self._threshold = conservative_queue_depth
        self._conservative = False
        self._alerts = alerts

    def add(self, name: str, amount: int = 1) -> None:
        if name not in _COUNTERS:
            raise KeyError(name)
        with self._lock:
            self._counts[name] += amount

    def dead_lettered(self, reason: str) -> None:
        with self._lock:
            self._dead_lettered[reason] += 1

    @property
    def conservative(self) -> bool:
        return self._conservative

    def set_depth(self, key: Hashable, depth: int) -> None:
        """Record the backlog of one consumer level; toggles conservative mode past the threshold."""
        with self._lock:
            self._depths[key] = max(depth, 0)
            total = sum(self._depths.values())
            was = self._conservative
            self._conservative = total > self._threshold
            changed = was != self._conservative
        if changed:
            kind = AlertKind.CONSERVATIVE_ON if self._conservative else AlertKind.CONSERVATIVE_OFF
            self._alerts.raise_alert(kind, f"queue depth {total} (threshold {self._threshold})")

    def forget_depth(self, key: Hashable) -> None:
        self.set_depth(key, 0)
        with self._lock:
            self._depths.pop(key, None)

    def snapshot(self, *, pending_publish: int, connected: bool) -> BusStats:
        with self._lock:
            return BusStats(
                **{name: self._counts[name] for name in _COUNTERS},
                pending_publish=pending_publish,
                dead_lettered=dict(self._dead_lettered),
                queue_depth=sum(self._depths.values()),
                queue_depths=_by_consumer(self._depths),
                conservative=self._conservative,
                connected=connected,
            )


def _by_consumer(depths: dict[Hashable, int]) -> dict[str, int]:
    """Depth per durable consumer: a key is its durable name, or (durable name, priority level)."""
    totals: Counter[str] = Counter()
    for key, depth in depths.items():
        totals[str(key[0] if isinstance(key, tuple) else key)] += depth
    return dict(totals)
