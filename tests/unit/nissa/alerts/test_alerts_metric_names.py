"""Every metric an alert rule reads is exported by some Esper server (else the rule could never fire)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from esper.nissa.alerts.metric_names import (
    duration_seconds,
    exported_sample_names,
    metric_names_in,
    range_seconds_in,
    unexported_metrics,
)
from esper.nissa.alerts.rules import RULES, RULES_BY_NAME
from esper.observability.metrics import REGISTRY


def test_every_metric_an_alert_rule_reads_is_in_the_servers_registry() -> None:
    exported = exported_sample_names(REGISTRY.collect())
    assert unexported_metrics(RULES, exported) == {}


def test_a_rule_naming_a_metric_no_server_exports_is_caught() -> None:
    exported = exported_sample_names(REGISTRY.collect())
    made_up = replace(
        RULES_BY_NAME["oona_queue_depth"],
        name="made_up",
        query="max by (job, consumer) (esper_oona_queue_depht)",
    )
    assert unexported_metrics([*RULES, made_up], exported) == {"made_up": frozenset({"esper_oona_queue_depht"})}


def test_a_histogram_exposes_buckets_sum_and_count_and_a_counter_its_total() -> None:
    registry = CollectorRegistry()
    Histogram("esper_x_seconds", "x", ["phase"], registry=registry)
    Counter("esper_y_total", "y", registry=registry)
    Gauge("esper_z", "z", ["consumer"], registry=registry)
    names = exported_sample_names(registry.collect())
    assert {"esper_x_seconds_bucket", "esper_x_seconds_sum", "esper_x_seconds_count"} <= names
    assert {"esper_y_total", "esper_z"} <= names
    assert "esper_y" not in names and "esper_x_seconds" not in names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="tamiyo"} == 0', {"up"}),
        (
            'histogram_quantile(0.95, sum by (job, le) (rate(esper_h_bucket{phase="total", le!="1e3"}[5m]))) > 0.018',
            {"esper_h_bucket"},
        ),
        ("sum(increase(esper_a_total[10m])) by (job) / on (job) esper_b > bool 5e-3", {"esper_a_total", "esper_b"}),
        ("max by (job, consumer) (esper_oona_queue_depth) > 1000", {"esper_oona_queue_depth"}),
        ("esper_x2_total offset 5m and esper_y", {"esper_x2_total", "esper_y"}),
    ],
)
def test_metric_names_are_read_from_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names_in(expr) == names


def test_range_durations_are_read_from_an_expression() -> None:
    assert range_seconds_in("increase(a[5m]) + rate(b[1h30m]) + c") == (300.0, 5400.0)
    assert duration_seconds("1500ms") == 1.5
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_seconds("5 minutes")
