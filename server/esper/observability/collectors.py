"""Collectors that read the state of live objects (buses, kernel caches, Urza's queue) at scrape time.

Counting in two places drifts, so the objects that already keep counters (a bus's
`BusStats`, a kernel cache's `KernelCacheStats`, Urza's compile-job table) are read
when Prometheus scrapes, not mirrored into metric objects as they change. An object
joins with `register(obj)` and leaves with `unregister(obj)`; it is held weakly, so
one its owner forgot to unregister does not outlive its owner.

Counters summed over objects must never go down, so the last reading of an object
that left (unregistered, or collected by the garbage collector) is kept and added
to every later scrape.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")


class StatsSources(Generic[S, T]):
    """The objects one collector reads, with their latest reading and the final readings of those that left.

    `read` turns an object into a small immutable reading; it runs outside the lock, and
    an object whose read fails is represented by its last good reading.
    """

    def __init__(self, read: Callable[[S], T]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._live: dict[int, tuple[weakref.ref[S], T | None]] = {}
        self._departed: list[T] = []

    def register(self, source: S) -> None:
        with self._lock:
            previous = self._live.get(id(source))
            if previous is not None and previous[0]() is not source and previous[1] is not None:
                # A dead object whose id was reused: keep what it counted.
                self._departed.append(previous[1])
            self._live[id(source)] = (weakref.ref(source), None)

    def unregister(self, source: S) -> None:
        """Forget `source`, keeping its final reading; unknown objects are ignored."""
        with self._lock:
            entry = self._live.get(id(source))
            if entry is None or entry[0]() is not source:
                return
            del self._live[id(source)]
        final = self._safe_read(source, entry[1])
        if final is not None:
            with self._lock:
                self._departed.append(final)

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for ref, _ in self._live.values() if ref() is not None)

    def read(self) -> tuple[list[T], list[T]]:
        """Readings of the live objects now, and the final readings of objects that left since the last call."""
        with self._lock:
            entries = list(self._live.items())
        live: list[T] = []
        departed: list[T] = []
        for key, (ref, last) in entries:
            source = ref()
            if source is None:
                with self._lock:
                    if self._live.get(key, (None, None))[0] is ref:
                        del self._live[key]
                        if last is not None:
                            departed.append(last)
                continue
            reading = self._safe_read(source, last)
            del source
            if reading is None:
                continue
            live.append(reading)
            with self._lock:
                if self._live.get(key, (None, None))[0] is ref:
                    self._live[key] = (ref, reading)
        with self._lock:
            departed.extend(self._departed)
            self._departed.clear()
        return live, departed

    def _safe_read(self, source: S, last: T | None) -> T | None:
        try:
            return self._read(source)
        except Exception:  # a scrape must not fail because one object cannot answer now
            logger.warning("metrics: reading %s failed; using its last reading", type(source).__name__, exc_info=True)
            return last


# Bus


class BusStatsLike(Protocol):
    """What the collector reads from `esper.oona.api.BusStats`."""

    @property
    def published(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def dead_lettered_total(self) -> int: ...
    @property
    def queue_depths(self) -> Mapping[str, int]: ...


class HasBusStats(Protocol):
    def stats(self) -> BusStatsLike: ...


@dataclass(frozen=True)
class BusReading:
    published: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    queue_depths: Mapping[str, int] = field(default_factory=dict)


def _read_bus(bus: HasBusStats) -> BusReading:
    stats = bus.stats()
    return BusReading(stats.published, stats.dropped, stats.dead_lettered_total, dict(stats.queue_depths))


class BusMetrics(Collector):
    """esper_oona_*: queue depth per consumer and the publish counters of every bus in the process."""

    def __init__(self) -> None:
        self._sources: StatsSources[HasBusStats, BusReading] = StatsSources(_read_bus)
        self._retired = Counter[str]()
        self._seen = False
        self._lock = threading.Lock()

    def register(self, bus: HasBusStats) -> None:
        self._seen = True
        self._sources.register(bus)

    def unregister(self, bus: HasBusStats) -> None:
        self._sources.unregister(bus)

    def describe(self) -> Iterable[Metric]:
        return self._families(BusReading(), {})

    def collect(self) -> Iterable[Metric]:
        live, departed = self._sources.read()
        with self._lock:
            for reading in departed:
                self._retired.update(
                    published=reading.published, dropped=reading.dropped, dead_lettered=reading.dead_lettered
                )
            totals = BusReading(
                published=self._retired["published"] + sum(r.published for r in live),
                dropped=self._retired["dropped"] + sum(r.dropped for r in live),
                dead_lettered=self._retired["dead_lettered"] + sum(r.dead_lettered for r in live),
            )
        depths = Counter[str]()
        for reading in live:
            depths.update(reading.queue_depths)
        return self._families(totals, depths) if self._seen else self._families(None, {})

    @staticmethod
    def _families(totals: BusReading | None, depths: Mapping[str, int]) -> list[Metric]:
        depth = GaugeMetricFamily(
            "esper_oona_queue_depth",
            "Messages waiting for a durable consumer of this process.",
            labels=["consumer"],
        )
        for consumer in sorted(depths):
            depth.add_metric([consumer], depths[consumer])
        counters = {
            "esper_oona_published": ("Messages the bus acknowledged as published.", "published"),
            "esper_oona_publish_dropped": ("Publishes lost to a full local buffer or refused for good.", "dropped"),
            "esper_oona_dead_lettered": ("Messages moved to the dead-letter stream.", "dead_lettered"),
        }
        families: list[Metric] = [depth]
        for name, (documentation, attribute) in counters.items():
            value = None if totals is None else getattr(totals, attribute)
            families.append(CounterMetricFamily(name, documentation, value=value))
        return families


# Kernel cache


class KernelCacheStatsLike(Protocol):
    """What the collector reads from `esper.kasmina.kernel_cache.KernelCacheStats`."""

    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...


class HasKernelCacheStats(Protocol):
    def stats(self) -> KernelCacheStatsLike: ...


@dataclass(frozen=True)
class CacheReading:
    hits: int
    misses: int


def _read_cache(cache: HasKernelCacheStats) -> CacheReading:
    stats = cache.stats()
    return CacheReading(stats.hits, stats.misses)


class KernelCacheMetrics(Collector):
    """esper_kasmina_kernel_cache_requests_total{result=hit|miss} over every kernel cache of the process."""

    def __init__(self) -> None:
        self._sources: StatsSources[HasKernelCacheStats, CacheReading] = StatsSources(_read_cache)
        self._retired = CacheReading(0, 0)
        self._seen = False
        self._lock = threading.Lock()

    def register(self, cache: HasKernelCacheStats) -> None:
        self._seen = True
        self._sources.register(cache)

    def unregister(self, cache: HasKernelCacheStats) -> None:
        self._sources.unregister(cache)

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        live, departed = self._sources.read()
        with self._lock:
            for reading in departed:
                self._retired = CacheReading(self._retired.hits + reading.hits, self._retired.misses + reading.misses)
            hits = self._retired.hits + sum(r.hits for r in live)
            misses = self._retired.misses + sum(r.misses for r in live)
        family = self._family()
        if self._seen:
            family.add_metric(["hit"], hits)
            family.add_metric(["miss"], misses)
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "esper_kasmina_kernel_cache_requests",
            "Kernel loads asked of Kasmina's kernel caches, by whether the kernel was already loaded.",
            labels=["result"],
        )


# Urza compile jobs


class HasCompileJobCounts(Protocol):
    def compile_job_counts(self) -> Mapping[str, int]:
        """Compile jobs by state name (QUEUED, RUNNING, SUCCEEDED, FAILED), zeros included."""
        ...


def _read_jobs(hub: HasCompileJobCounts) -> Mapping[str, int]:
    return dict(hub.compile_job_counts())


class CompileJobMetrics(Collector):
    """esper_urza_compile_jobs{state}: compile jobs in Urza's queue by state, read from the database."""

    def __init__(self) -> None:
        self._sources: StatsSources[HasCompileJobCounts, Mapping[str, int]] = StatsSources(_read_jobs)

    def register(self, hub: HasCompileJobCounts) -> None:
        self._sources.register(hub)

    def unregister(self, hub: HasCompileJobCounts) -> None:
        self._sources.unregister(hub)

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        live, _ = self._sources.read()
        counts = Counter[str]()
        for reading in live:
            counts.update(reading)
        family = self._family()
        for state in sorted(counts):
            family.add_metric([state], counts[state])
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("esper_urza_compile_jobs", "Compile jobs in Urza's queue by state.", labels=["state"])
