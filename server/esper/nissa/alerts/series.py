"""Scraped samples kept for a while, with Prometheus' staleness rules.

A series is a metric name and its labels. Each scrape appends one sample per
series; a series that a scrape no longer returns (or whose target failed or left
the target list) gets a stale marker, so it stops answering instant queries at
once instead of lingering for the lookback window, as in Prometheus.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from esper import checks

# Sorted (name, value) pairs: hashable, and the same labels always compare equal.
Labels = tuple[tuple[str, str], ...]
# A sample: timestamp in seconds and value; None is a stale marker.
Point = tuple[float, float | None]

# How far back an instant query looks for a series' latest sample (Prometheus' default).
LOOKBACK_SECONDS = 300.0


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class SeriesKey:
    """One time series: metric name and labels (labels include job and instance)."""

    name: str
    labels: Labels

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


class SampleHistory:
    """Samples by series, kept for `retention_seconds`; safe to use from several threads."""

    def __init__(self, retention_seconds: float) -> None:
        checks.positive("retention_seconds", retention_seconds)
        self.retention_seconds = retention_seconds
        self._points: dict[str, dict[Labels, deque[Point]]] = {}
        self._lock = threading.Lock()

    def append(self, key: SeriesKey, time: float, value: float | None) -> None:
        """Add a sample (None marks the series stale from `time` on)."""
        with self._lock:
            named = self._points.setdefault(key.name, {})
            points = named.get(key.labels)
            if points is None:
                if value is None:
                    return
                points = named[key.labels] = deque()
            if points and time < points[-1][0]:
                # Out of order (a clock step back): keep the series monotonic.
                return
            points.append((time, value))

    def mark_stale(self, keys: Iterable[SeriesKey], time: float) -> None:
        for key in keys:
            self.append(key, time, None)

    def prune(self, now: float) -> None:
        """Forget samples older than the retention, and series left with nothing."""
        oldest = now - self.retention_seconds
        with self._lock:
            for name, named in list(self._points.items()):
                for labels, points in list(named.items()):
                    while points and points[0][0] < oldest:
                        points.popleft()
                    if all(value is None for _, value in points):
                        del named[labels]
                if not named:
                    del self._points[name]

    def series(self, name: str) -> Iterator[tuple[SeriesKey, list[Point]]]:
        """Every series named `name` with a copy of its points, sorted by labels."""
        with self._lock:
            found = [(SeriesKey(name, labels), list(points)) for labels, points in self._points.get(name, {}).items()]
        yield from sorted(found, key=lambda item: item[0].labels)


def latest(points: list[Point], now: float, lookback: float = LOOKBACK_SECONDS) -> float | None:
    """The value an instant query sees at `now`: the newest sample within the lookback, unless stale."""
    for time, value in reversed(points):
        if time > now:
            continue
        if time < now - lookback:
            return None
        return value
    return None


def in_window(points: list[Point], now: float, window: float) -> list[tuple[float, float]]:
    """The non-stale samples a range selector `[window]` sees at `now` (both ends included)."""
    start = now - window
    return [(time, value) for time, value in points if start <= time <= now and value is not None]
