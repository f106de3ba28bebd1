"""deploy/prometheus/rules/esper.rules.yml is the catalogue rendered, and promtool's tests cover every rule."""

from __future__ import annotations

import re

import pytest
import yaml

from esper.nissa.alerts.render import go_duration, go_template, render_rules
from esper.nissa.alerts.rules import RULES, RULES_BY_NAME, AlertRule, format_number, format_value
from tests.unit.nissa.alerts.promtool_files import RULE_FILE, load, promtool_test_files

REQUIRED_RULES = {
    "tamiyo_unavailable",
    "training_latency_high",
    "kasmina_isolation_violation",
    "oona_queue_depth",
    "tezzeret_compile_retry_high",
    "service_down",
    "telemetry_spans_dropped",
}


def test_the_committed_rule_file_is_the_rendered_catalogue() -> None:
    assert RULE_FILE.read_text(encoding="utf-8") == render_rules(), (
        "deploy/prometheus/rules/esper.rules.yml is stale: run "
        "`.venv/bin/python -m esper.nissa.alerts.render > deploy/prometheus/rules/esper.rules.yml`"
    )


def test_the_rule_file_holds_every_rule_with_its_expr_for_severity_and_summary() -> None:
    rules = {entry["alert"]: entry for entry in yaml.safe_load(render_rules())["groups"][0]["rules"]}
    assert set(rules) == set(RULES_BY_NAME) and set(rules) >= REQUIRED_RULES
    assert rules["tamiyo_unavailable"] == {
        "alert": "tamiyo_unavailable",
        "expr": 'up{job="tamiyo"} == 0',
        "for": "15s",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "tamiyo at {{ $labels.instance }} does not answer its metrics scrape "
            '(up={{ printf "%.4g" $value }})'
        },
    }
    assert rules["oona_queue_depth"]["expr"] == "max by (job, consumer) (esper_oona_queue_depth) > 1000"
    assert rules["oona_queue_depth"]["for"] == "1m"
    assert "for" not in rules["kasmina_isolation_violation"]
    assert rules["kasmina_isolation_violation"]["expr"] == "increase(esper_kasmina_isolation_violations_total[5m]) > 0"


def test_every_rule_is_tested_by_promtool_both_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in promtool_test_files():
        document = load(path)
        assert document["rule_files"] == ["../rules/esper.rules.yml"], path.name
        for test in document["tests"]:
            for check in test.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == set(RULES_BY_NAME)
    assert quiet == set(RULES_BY_NAME)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_a_summary_names_only_labels_its_alert_has(rule: AlertRule) -> None:
    template = go_template(rule)
    assert "{value}" not in template and "{threshold}" not in template
    for label in re.findall(r"\$labels\.(\w+)", template):
        assert label in ("job", "instance", "consumer"), f"{rule.name} prints label {label}"


def test_durations_and_numbers_print_as_prometheus_reads_them() -> None:
    assert [go_duration(s) for s in (15, 60, 90, 600, 3600, 1.5)] == ["15s", "1m", "90s", "10m", "1h", "1500ms"]
    assert [format_number(v) for v in (0, 5, 1000, 0.018)] == ["0", "5", "1000", "0.018"]
    assert [format_value(v) for v in (0.0240625, 8.000000000000002, 2500, float("nan"))] == [
        "0.02406",
        "8",
        "2500",
        "NaN",
    ]
