"""The metric catalogue alert rules are written against: every name, type and label set, as exported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import esper
from esper.observability import metrics
from esper.oona.api import BusStats

# Sample name -> (type, label names). The binding list of the issue; changing it breaks alert rules.
CATALOGUE: dict[str, tuple[str, frozenset[str]]] = {
    "esper_rpc_server_duration_seconds": ("histogram", frozenset({"grpc_service", "grpc_method", "grpc_code"})),
    "esper_spans_exported_total": ("counter", frozenset()),
    "esper_spans_dropped_total": ("counter", frozenset()),
    "esper_build_info": ("gauge", frozenset({"version"})),
    "esper_tolaria_hook_duration_seconds": ("histogram", frozenset({"phase"})),
    "esper_tolaria_epoch_duration_seconds": ("histogram", frozenset()),
    "esper_tolaria_runs": ("gauge", frozenset({"status"})),
    "esper_tolaria_controller_unavailable_total": ("counter", frozenset()),
    "esper_kasmina_seeds": ("gauge", frozenset({"stage"})),
    "esper_kasmina_isolation_violations_total": ("counter", frozenset()),
    "esper_kasmina_kernel_cache_requests_total": ("counter", frozenset({"result"})),
    "esper_oona_queue_depth": ("gauge", frozenset({"consumer"})),
    "esper_oona_published_total": ("counter", frozenset()),
    "esper_oona_publish_dropped_total": ("counter", frozenset()),
    "esper_oona_dead_lettered_total": ("counter", frozenset()),
    "esper_tezzeret_compile_attempts_total": ("counter", frozenset({"pipeline"})),
    "esper_tezzeret_compile_retries_total": ("counter", frozenset({"pipeline"})),
    "esper_tezzeret_compile_failures_total": ("counter", frozenset({"pipeline"})),
    "esper_urza_kernel_downloads_total": ("counter", frozenset()),
    "esper_urza_compile_jobs": ("gauge", frozenset({"state"})),
    "esper_tamiyo_decisions_total": ("counter", frozenset({"action"})),
    "esper_tamiyo_step_duration_seconds": ("histogram", frozenset()),
    "esper_tamiyo_policy_fallbacks_total": ("counter", frozenset({"cause"})),
    "esper_nissa_spans_received_total": ("counter", frozenset()),
    "esper_nissa_spans_stored": ("gauge", frozenset()),
    "esper_nissa_spans_evicted_total": ("counter", frozenset()),
    "esper_nissa_forward_dropped_total": ("counter", frozenset()),
    "esper_nissa_span_parts_dropped_total": ("counter", frozenset({"part"})),
    "esper_nissa_exports_refused_total": ("counter", frozenset()),
}

_LABELLED = {
    metrics.RPC_SERVER_DURATION: {"grpc_service": "t.S", "grpc_method": "M", "grpc_code": "OK"},
    metrics.TOLARIA_HOOK_DURATION: {"phase": "catalogue"},
    metrics.TOLARIA_RUNS: {"status": "catalogue"},
    metrics.KASMINA_SEEDS: {"stage": "catalogue"},
    metrics.TEZZERET_COMPILE_ATTEMPTS: {"pipeline": "catalogue"},
    metrics.TEZZERET_COMPILE_RETRIES: {"pipeline": "catalogue"},
    metrics.TEZZERET_COMPILE_FAILURES: {"pipeline": "catalogue"},
    metrics.TAMIYO_DECISIONS: {"action": "catalogue"},
    metrics.TAMIYO_POLICY_FALLBACKS: {"cause": "catalogue"},
    metrics.NISSA_SPAN_PARTS_DROPPED: {"part": "catalogue"},
}


class _Bus:
    def stats(self) -> BusStats:
        return BusStats(published=1, queue_depths={"catalogue": 2})


class _Cache:
    hits, misses = 3, 1

    def stats(self) -> Any:
        return self


class _Hub:
    def compile_job_counts(self) -> dict[str, int]:
        return {"QUEUED": 1}


@pytest.fixture
def every_metric_has_a_sample() -> Iterator[None]:
    """A child for every labelled metric and a source for every collector, removed afterwards."""
    for metric, labels in _LABELLED.items():
        metric.labels(**labels)
    bus, cache, hub = _Bus(), _Cache(), _Hub()
    metrics.OONA.register(bus)
    metrics.KERNEL_CACHE.register(cache)
    metrics.URZA_COMPILE_JOBS.register(hub)
    try:
        yield
    finally:
        metrics.URZA_COMPILE_JOBS.unregister(hub)
        metrics.KERNEL_CACHE.unregister(cache)
        metrics.OONA.unregister(bus)
        for metric, labels in _LABELLED.items():
            metric.remove(*labels.values())


def _exported() -> dict[str, tuple[str, frozenset[str]]]:
    """Sample base name -> (type, label names of its samples) from the text the endpoint serves."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode("utf-8")):
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        found[name] = (family.type, frozenset(labels))
    return found


@pytest.mark.usefixtures("every_metric_has_a_sample")
def test_every_catalogue_metric_is_exported_with_its_type_and_labels() -> None:
    exported = _exported()
    assert {name: exported.get(name) for name in CATALOGUE} == CATALOGUE


def test_only_catalogue_metrics_carry_the_esper_prefix() -> None:
    names = {name for name in _exported() if name.startswith("esper_")}
    assert names <= set(CATALOGUE), f"not in the catalogue: {sorted(names - set(CATALOGUE))}"


def test_build_info_carries_the_package_version() -> None:
    assert metrics.REGISTRY.get_sample_value("esper_build_info", {"version": esper.__version__}) == 1.0


def test_hook_buckets_have_an_edge_at_the_18_ms_budget() -> None:
    assert 0.018 in metrics.HOOK_BUCKETS
    assert min(metrics.RPC_BUCKETS) == 0.0005 and max(metrics.RPC_BUCKETS) == 10.0


def test_the_metrics_module_imports_no_grpc() -> None:
    probe = "import sys, esper.observability.metrics; print('grpc' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
