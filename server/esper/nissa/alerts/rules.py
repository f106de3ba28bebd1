"""The alert rule catalogue: the one place Esper's alert rules are defined.

Each rule carries its PromQL (what deploy/prometheus/rules/esper.rules.yml holds,
rendered from here by esper.nissa.alerts.render) and a Python evaluation over
scraped samples that computes the same vector (what Nissa evaluates itself). The
comparison and threshold are shared by both, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from esper import checks
from esper.leyline.v1 import alert_pb2
from esper.nissa.alerts.promql import (
    Matcher,
    Vector,
    aggregate,
    compare,
    comparisons,
    histogram_quantile,
    increase,
    rate,
    select,
)
from esper.nissa.alerts.series import Labels, SampleHistory

# A rule's vector before its comparison, at a moment, from the scraped history.
VectorQuery = Callable[[SampleHistory, float], Vector]

CRITICAL = alert_pb2.ALERT_SEVERITY_CRITICAL
WARNING = alert_pb2.ALERT_SEVERITY_WARNING
INFO = alert_pb2.ALERT_SEVERITY_INFO

# What a Go template prints for a label the alert does not have; Python prints the same.
MISSING_LABEL = "<no value>"


@dataclass(frozen=True)
class AlertRule:
    """One alert rule.

    `query` is the PromQL before the comparison and `vector` its Python twin; the
    rule holds where `query <comparison> threshold` keeps a sample, and fires once it
    has held for `for_seconds`. `summary` is a one-line template: `{value}` is the
    observed value, `{threshold}` the threshold, any other `{name}` the alert's label.
    """

    name: str
    severity: alert_pb2.AlertSeverity
    for_seconds: float
    query: str
    comparison: str
    threshold: float
    summary: str
    vector: VectorQuery

    def __post_init__(self) -> None:
        if self.comparison not in comparisons():
            raise ValueError(f"rule {self.name}: unknown comparison {self.comparison!r}")
        checks.non_negative(f"rules.{self.name}.for_seconds", self.for_seconds)

    @property
    def expr(self) -> str:
        """The PromQL expression of the Prometheus rule."""
        return f"{self.query} {self.comparison} {format_number(self.threshold)}"

    @property
    def severity_label(self) -> str:
        """ "critical", "warning" or "info": the Prometheus rule's severity label."""
        return alert_pb2.AlertSeverity.Name(self.severity).removeprefix("ALERT_SEVERITY_").lower()

    def evaluate(self, history: SampleHistory, now: float) -> Vector:
        """The samples for which the rule's condition holds at `now`."""
        return compare(self.vector(history, now), self.comparison, self.threshold)

    def summary_for(self, labels: Labels, value: float) -> str:
        fields: dict[str, str] = _MissingAsGo(labels)
        fields["value"] = format_value(value)
        fields["threshold"] = format_value(self.threshold)
        return self.summary.format_map(fields)


class _MissingAsGo(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return MISSING_LABEL


def format_value(value: float) -> str:
    """A value as the rule file's summary prints it (Go's printf "%.4g")."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def format_number(value: float) -> str:
    """A threshold as a PromQL literal: 0.018, 1000."""
    return repr(float(value)).removesuffix(".0")


# The queries, each beside the PromQL it mirrors in its rule below.


def _tamiyo_up(history: SampleHistory, now: float) -> Vector:
    return select(history, "up", [Matcher("job", "tamiyo")], now)


def _other_up(history: SampleHistory, now: float) -> Vector:
    return select(history, "up", [Matcher("job", "tamiyo", equal=False)], now)


def _hook_p95(history: SampleHistory, now: float) -> Vector:
    buckets = rate(history, "esper_tolaria_hook_duration_seconds_bucket", [Matcher("phase", "total")], now, 300)
    return histogram_quantile(0.95, aggregate(buckets, "sum", ("job", "le")))


def _isolation_violations(history: SampleHistory, now: float) -> Vector:
    return increase(history, "esper_kasmina_isolation_violations_total", [], now, 300)


def _queue_depth(history: SampleHistory, now: float) -> Vector:
    return aggregate(select(history, "esper_oona_queue_depth", [], now), "max", ("job", "consumer"))


def _compile_retries(history: SampleHistory, now: float) -> Vector:
    return aggregate(increase(history, "esper_tezzeret_compile_retries_total", [], now, 600), "sum", ("job",))


def _spans_dropped(history: SampleHistory, now: float) -> Vector:
    return aggregate(increase(history, "esper_spans_dropped_total", [], now, 300), "sum", ("job",))


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        name="tamiyo_unavailable",
        severity=CRITICAL,
        for_seconds=15,
        query='up{job="tamiyo"}',
        comparison="==",
        threshold=0,
        summary="tamiyo at {instance} does not answer its metrics scrape (up={value})",
        vector=_tamiyo_up,
    ),
    AlertRule(
        name="service_down",
        severity=CRITICAL,
        for_seconds=30,
        query='up{job!="tamiyo"}',
        comparison="==",
        threshold=0,
        summary="{job} at {instance} does not answer its metrics scrape (up={value})",
        vector=_other_up,
    ),
    AlertRule(
        name="training_latency_high",
        severity=WARNING,
        for_seconds=60,
        query=(
            "histogram_quantile(0.95, sum by (job, le) "
            '(rate(esper_tolaria_hook_duration_seconds_bucket{phase="total"}[5m])))'
        ),
        comparison=">",
        threshold=0.018,
        summary="{job}: p95 of the epoch-end hook over 5m is {value} s (budget {threshold} s)",
        vector=_hook_p95,
    ),
    AlertRule(
        name="kasmina_isolation_violation",
        severity=CRITICAL,
        for_seconds=0,
        query="increase(esper_kasmina_isolation_violations_total[5m])",
        comparison=">",
        threshold=0,
        summary="{job}: {value} seed isolation violations in the last 5m",
        vector=_isolation_violations,
    ),
    AlertRule(
        name="oona_queue_depth",
        severity=WARNING,
        for_seconds=60,
        query="max by (job, consumer) (esper_oona_queue_depth)",
        comparison=">",
        threshold=1000,
        summary="{job}: consumer {consumer} has {value} messages waiting (limit {threshold})",
        vector=_queue_depth,
    ),
    AlertRule(
        name="tezzeret_compile_retry_high",
        severity=WARNING,
        for_seconds=0,
        query="sum by (job) (increase(esper_tezzeret_compile_retries_total[10m]))",
        comparison=">",
        threshold=5,
        summary="{job}: {value} kernel compile retries in the last 10m (limit {threshold})",
        vector=_compile_retries,
    ),
    AlertRule(
        name="telemetry_spans_dropped",
        severity=INFO,
        for_seconds=0,
        query="sum by (job) (increase(esper_spans_dropped_total[5m]))",
        comparison=">",
        threshold=0,
        summary="{job}: {value} trace spans dropped in the last 5m (is the OTLP receiver reachable?)",
        vector=_spans_dropped,
    ),
)

RULES_BY_NAME: Mapping[str, AlertRule] = {rule.name: rule for rule in RULES}
