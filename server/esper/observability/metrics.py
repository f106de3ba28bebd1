"""Every Prometheus metric Esper exports, in one process-wide registry (`REGISTRY`).

The names, types and labels are a contract: alert rules (Nissa's and deploy/prometheus's)
are written against them, so a metric is renamed here or nowhere. Domain code
observes through these objects (e.g. `TAMIYO_DECISIONS.labels(action="ADVANCE").inc()`);
values that already live in objects are read at scrape time by collectors that the
objects register with (`OONA.register(bus)`, `KERNEL_CACHE.register(cache)`,
`URZA_COMPILE_JOBS.register(hub)`, each with a matching `unregister`).

Importing this module is cheap and pulls in no grpc: domain modules may use it.
Label values are bounded sets (enum names, pipeline names, consumer names), never ids.
The scraper, not the process, adds `job`/`instance`.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

import esper
from esper.observability.collectors import BusMetrics, CompileJobMetrics, KernelCacheMetrics

# `*_created` series double every counter and histogram and nothing here reads them.
prometheus_client.disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Bucket upper bounds, in seconds.
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Around the 18 ms epoch-end hook budget (assembly 3.5 + Tamiyo 12 + adaptation 1.5 + guard 1 ms):
# an edge at each phase's budget and at the total, so p95 against 18 ms interpolates inside one bucket.
HOOK_BUCKETS = (0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.0035, 0.005, 0.008, 0.012, 0.018, 0.025, 0.05, 0.1, 0.25, 1.0)
EPOCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Tamiyo's decision budget is 100 ms; a heuristic step usually takes well under a millisecond.
TAMIYO_STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.012, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# Common: every server.

RPC_SERVER_DURATION = Histogram(
    "esper_rpc_server_duration_seconds",
    "Time a gRPC server took to answer an rpc (streams: until the last response), by final status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=RPC_BUCKETS,
    registry=REGISTRY,
)
SPANS_EXPORTED = Counter(
    "esper_spans_exported_total", "Trace spans this process exported over OTLP.", registry=REGISTRY
)
SPANS_DROPPED = Counter(
    "esper_spans_dropped_total",
    "Trace spans this process dropped (export queue full or export failed).",
    registry=REGISTRY,
)
BUILD_INFO = Gauge("esper_build_info", "Always 1; the Esper version of this process.", ["version"], registry=REGISTRY)
BUILD_INFO.labels(version=esper.__version__).set(1)

# Tolaria.

TOLARIA_HOOK_DURATION = Histogram(
    "esper_tolaria_hook_duration_seconds",
    "Epoch-end hook time by phase (assemble, controller, apply, total); the budget for total is 18 ms.",
    ["phase"],
    buckets=HOOK_BUCKETS,
    registry=REGISTRY,
)
TOLARIA_EPOCH_DURATION = Histogram(
    "esper_tolaria_epoch_duration_seconds",
    "Wall time of one training epoch.",
    buckets=EPOCH_BUCKETS,
    registry=REGISTRY,
)
TOLARIA_RUNS = Gauge(
    "esper_tolaria_runs", "Training runs this Tolaria holds, by status.", ["status"], registry=REGISTRY
)
TOLARIA_CONTROLLER_UNAVAILABLE = Counter(
    "esper_tolaria_controller_unavailable_total",
    "Epoch boundaries at which Tamiyo could not answer (the run carried on without a decision).",
    registry=REGISTRY,
)

# Kasmina (in the Tolaria process).

KASMINA_SEEDS = Gauge(
    "esper_kasmina_seeds",
    "Seeds by lifecycle stage (SeedStage name without its prefix).",
    ["stage"],
    registry=REGISTRY,
)
KASMINA_ISOLATION_VIOLATIONS = Counter(
    "esper_kasmina_isolation_violations_total",
    "Gradient-isolation checks that found a seed's training touching the host.",
    registry=REGISTRY,
)
KERNEL_CACHE = KernelCacheMetrics()
REGISTRY.register(KERNEL_CACHE)

# Oona (every process with a bus).

OONA = BusMetrics()
REGISTRY.register(OONA)

# Tezzeret.

TEZZERET_COMPILE_ATTEMPTS = Counter(
    "esper_tezzeret_compile_attempts_total",
    "Compile attempts started, by pipeline.",
    ["pipeline"],
    registry=REGISTRY,
)
TEZZERET_COMPILE_RETRIES = Counter(
    "esper_tezzeret_compile_retries_total",
    "Compile attempts that repeat an earlier attempt of the same job (after a failure or a lost worker).",
    ["pipeline"],
    registry=REGISTRY,
)
TEZZERET_COMPILE_FAILURES = Counter(
    "esper_tezzeret_compile_failures_total",
    "Compile attempts that failed and were reported to Urza (which requeues those worth retrying).",
    ["pipeline"],
    registry=REGISTRY,
)

# Urza.

URZA_KERNEL_DOWNLOADS = Counter(
    "esper_urza_kernel_downloads_total",
    "Kernel artifacts served by DownloadKernel, checksum verified.",
    registry=REGISTRY,
)
URZA_COMPILE_JOBS = CompileJobMetrics()
REGISTRY.register(URZA_COMPILE_JOBS)

# Tamiyo.

TAMIYO_DECISIONS = Counter(
    "esper_tamiyo_decisions_total",
    "Decisions Tamiyo made, by action (CommandType name without its prefix; WAIT when no command).",
    ["action"],
    registry=REGISTRY,
)
TAMIYO_POLICY_FALLBACKS = Counter(
    "esper_tamiyo_policy_fallbacks_total",
    "Boundaries at which the learned policy failed and heuristic-v1 decided, by cause "
    "(error, non_finite, forbidden, timeout).",
    ["cause"],
    registry=REGISTRY,
)
TAMIYO_STEP_DURATION = Histogram(
    "esper_tamiyo_step_duration_seconds",
    "Time Tamiyo took to decide one epoch boundary of one run.",
    buckets=TAMIYO_STEP_BUCKETS,
    registry=REGISTRY,
)

# Nissa.

NISSA_SPANS_RECEIVED = Counter(
    "esper_nissa_spans_received_total", "Spans Nissa's OTLP receiver accepted.", registry=REGISTRY
)
NISSA_SPANS_STORED = Gauge("esper_nissa_spans_stored", "Spans Nissa holds in its store now.", registry=REGISTRY)
NISSA_SPANS_EVICTED = Counter(
    "esper_nissa_spans_evicted_total", "Spans Nissa's bounded store removed to make room.", registry=REGISTRY
)
NISSA_SPAN_PARTS_DROPPED = Counter(
    "esper_nissa_span_parts_dropped_total",
    "Parts of received spans Nissa cut to its limits: attributes dropped, names, keys and values truncated.",
    ["part"],
    registry=REGISTRY,
)
NISSA_EXPORTS_REFUSED = Counter(
    "esper_nissa_exports_refused_total",
    "OTLP exports Nissa refused whole for holding more spans or bytes than one export may.",
    registry=REGISTRY,
)
NISSA_FORWARD_DROPPED = Counter(
    "esper_nissa_forward_dropped_total",
    "Spans Nissa could not forward to the next OTLP endpoint (queue full or export failed).",
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The registry in the Prometheus text format 0.0.4 (what /metrics serves)."""
    return prometheus_client.generate_latest(REGISTRY)
