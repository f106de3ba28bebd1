"""Collectors read live objects at scrape time; counters of objects that leave never go down."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from esper.leyline.v1 import control_pb2
from esper.observability import metrics
from esper.observability.collectors import BusMetrics, CompileJobMetrics, KernelCacheMetrics, StatsSources
from esper.oona import subjects
from esper.oona.api import BusStats, ConsumerSpec
from esper.oona.config import OonaConfig
from esper.oona.memory import InProcessBus


@dataclass
class FakeBus:
    published: int = 0
    dropped: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)
    broken: bool = False

    def stats(self) -> BusStats:
        if self.broken:
            raise ConnectionError("stats unavailable")
        return BusStats(
            published=self.published,
            dropped=self.dropped,
            dead_lettered=dict(self.dead_lettered),
            queue_depths=dict(self.depths),
        )


@dataclass
class FakeCache:
    hits: int = 0
    misses: int = 0

    def stats(self) -> Any:
        return self


def _registry(collector: Any) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_bus_counters_sum_over_buses_and_keep_what_a_closed_bus_counted() -> None:
    collector = BusMetrics()
    registry = _registry(collector)
    first = FakeBus(published=5, dropped=1, dead_lettered={"MAX_DELIVER": 2})
    second = FakeBus(published=7)
    collector.register(first)
    collector.register(second)
    assert _value(registry, "esper_oona_published_total") == 12
    first.published = 6
    collector.unregister(first)  # the final reading, 6, is kept
    assert _value(registry, "esper_oona_published_total") == 13
    assert _value(registry, "esper_oona_publish_dropped_total") == 1
    assert _value(registry, "esper_oona_dead_lettered_total") == 2
    collector.unregister(first)  # twice is harmless
    assert _value(registry, "esper_oona_published_total") == 13


def test_queue_depth_is_per_consumer_and_only_for_live_buses() -> None:
    collector = BusMetrics()
    registry = _registry(collector)
    one = FakeBus(depths={"karn": 3, "simic": 1})
    two = FakeBus(depths={"karn": 2})
    collector.register(one)
    collector.register(two)
    assert _value(registry, "esper_oona_queue_depth", consumer="karn") == 5
    assert _value(registry, "esper_oona_queue_depth", consumer="simic") == 1
    collector.unregister(one)
    assert _value(registry, "esper_oona_queue_depth", consumer="karn") == 2
    assert _value(registry, "esper_oona_queue_depth", consumer="simic") is None


def test_a_bus_nobody_unregistered_goes_away_with_its_owner_keeping_its_last_reading() -> None:
    collector = BusMetrics()
    registry = _registry(collector)
    bus = FakeBus(published=4, depths={"nissa": 9})
    collector.register(bus)
    assert _value(registry, "esper_oona_queue_depth", consumer="nissa") == 9
    del bus
    gc.collect()
    assert _value(registry, "esper_oona_queue_depth", consumer="nissa") is None
    assert _value(registry, "esper_oona_published_total") == 4


def test_a_bus_that_cannot_answer_is_shown_by_its_last_reading() -> None:
    collector = BusMetrics()
    registry = _registry(collector)
    bus = FakeBus(published=3)
    collector.register(bus)
    assert _value(registry, "esper_oona_published_total") == 3
    bus.broken = True
    assert _value(registry, "esper_oona_published_total") == 3


def test_a_process_that_never_had_a_bus_exports_the_families_without_samples() -> None:
    registry = _registry(BusMetrics())
    families = {family.name: family.samples for family in registry.collect()}
    assert families == {
        "esper_oona_queue_depth": [],
        "esper_oona_published": [],
        "esper_oona_publish_dropped": [],
        "esper_oona_dead_lettered": [],
    }


def test_kernel_cache_hits_and_misses_survive_the_cache() -> None:
    collector = KernelCacheMetrics()
    registry = _registry(collector)
    assert _value(registry, "esper_kasmina_kernel_cache_requests_total", result="hit") is None
    cache = FakeCache(hits=19, misses=1)
    collector.register(cache)
    assert _value(registry, "esper_kasmina_kernel_cache_requests_total", result="hit") == 19
    assert _value(registry, "esper_kasmina_kernel_cache_requests_total", result="miss") == 1
    collector.unregister(cache)
    another = FakeCache(hits=1)
    collector.register(another)
    assert _value(registry, "esper_kasmina_kernel_cache_requests_total", result="hit") == 20


def test_compile_jobs_are_a_gauge_of_the_live_hubs_only() -> None:
    class Hub:
        def __init__(self, counts: dict[str, int]) -> None:
            self.counts = counts

        def compile_job_counts(self) -> dict[str, int]:
            return self.counts

    collector = CompileJobMetrics()
    registry = _registry(collector)
    hub = Hub({"QUEUED": 2, "RUNNING": 1, "FAILED": 0})
    collector.register(hub)
    assert _value(registry, "esper_urza_compile_jobs", state="QUEUED") == 2
    assert _value(registry, "esper_urza_compile_jobs", state="FAILED") == 0
    hub.counts = {"QUEUED": 0, "RUNNING": 0, "FAILED": 0, "SUCCEEDED": 3}
    assert _value(registry, "esper_urza_compile_jobs", state="SUCCEEDED") == 3
    collector.unregister(hub)
    assert _value(registry, "esper_urza_compile_jobs", state="SUCCEEDED") is None


def test_stats_sources_accept_objects_that_are_not_hashable() -> None:
    @dataclass  # eq=True makes instances unhashable
    class Unhashable:
        value: int

    sources: StatsSources[Unhashable, int] = StatsSources(lambda source: source.value)
    item = Unhashable(3)
    sources.register(item)
    assert sources.read() == ([3], [])
    sources.unregister(item)
    assert sources.read() == ([], [3])
    assert sources.read() == ([], [])


def test_an_in_process_bus_reports_its_consumers_backlog_and_unregisters_on_close() -> None:
    # The process-wide collector: the bus registers itself on creation.
    bus = InProcessBus(OonaConfig())
    consumer = "metrics_unit_consumer"
    reports = subjects.field_report_subject("metrics-run")
    received: list[object] = []
    bus.subscribe(ConsumerSpec(consumer, (reports,)), received.append)
    before = metrics.REGISTRY.get_sample_value("esper_oona_published_total") or 0.0
    for key in ("a", "b", "c"):
        bus.publish(reports, bus.seal(control_pb2.FieldReport(), source="test", idempotency_key=key))
    assert metrics.REGISTRY.get_sample_value("esper_oona_queue_depth", {"consumer": consumer}) == 3
    assert bus.flush(5.0) and len(received) == 3
    assert metrics.REGISTRY.get_sample_value("esper_oona_queue_depth", {"consumer": consumer}) == 0
    bus.close()
    assert metrics.REGISTRY.get_sample_value("esper_oona_queue_depth", {"consumer": consumer}) is None
    assert metrics.REGISTRY.get_sample_value("esper_oona_published_total") == before + 3
