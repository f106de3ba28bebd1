"""Reading deploy/prometheus/tests/*.yml (promtool's rule test format) and replaying it through Nissa's engine.

The same files that `promtool test rules` checks against the rendered rule file are
run through the Python evaluation here, so both must produce the same alerts, with
the same labels and summaries, at the same moments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from esper.nissa.alerts import AlertEngine, NissaAlertsConfig
from esper.nissa.alerts.engine import FIRING
from esper.nissa.alerts.metric_names import duration_seconds
from esper.nissa.alerts.series import SeriesKey, labels_of

REPO = Path(__file__).resolve().parents[4]
PROMTOOL_TESTS = REPO / "deploy" / "prometheus" / "tests"
RULE_FILE = REPO / "deploy" / "prometheus" / "rules" / "esper.rules.yml"

_MISSING = object()
_STALE = object()
_SERIES = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:\\.|[^"\\])*)"\s*,?')
_EXPANDING = re.compile(r"^([-+]?[0-9.eE]+)(?:([-+])([0-9.eE]+))?x([0-9]+)$")


@dataclass(frozen=True)
class Mismatch:
    test: str
    alertname: str
    eval_time: str
    expected: list[tuple[tuple[tuple[str, str], ...], str]]
    got: list[tuple[tuple[tuple[str, str], ...], str]]


def promtool_test_files() -> list[Path]:
    return sorted(PROMTOOL_TESTS.glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def series_key(text: str) -> SeriesKey:
    """`name{a="b", ...}` as a SeriesKey."""
    match = _SERIES.match(text)
    assert match, f"cannot read series {text!r}"
    body = match.group(2) or ""
    labels = {name: value.encode().decode("unicode_escape") for name, value in _LABEL.findall(body)}
    return SeriesKey(match.group(1), labels_of(labels))


def expand_values(text: str) -> list[object]:
    """promtool's expanding notation: '1 2 3', 'a+bxn' (n+1 values), 'axn', '_', '_xn' (n gaps), 'stale'."""
    values: list[object] = []
    for token in text.split():
        if token == "_":
            values.append(_MISSING)
        elif token.startswith("_x"):
            values += [_MISSING] * int(token[2:])
        elif token == "stale":
            values.append(_STALE)
        elif match := _EXPANDING.match(token):
            start, sign, step, times = match.groups()
            value = float(start)
            increment = float(step or 0) * (-1 if sign == "-" else 1)
            values.append(value)
            for _ in range(int(times)):
                # Accumulated like promtool does, so float rounding matches too.
                value += increment
                values.append(value)
        else:
            values.append(float(token))
    return values


def replay(document: dict[str, Any], test: dict[str, Any]) -> list[Mismatch]:
    """Run one promtool test case through AlertEngine; the alert checks that came out differently."""
    evaluation_interval = duration_seconds(document.get("evaluation_interval", "1m"))
    interval = duration_seconds(test.get("interval", "1m"))
    engine = AlertEngine(NissaAlertsConfig(evaluation_interval_seconds=evaluation_interval), fetch=_no_fetch)
    for series in test.get("input_series", []):
        key = series_key(series["series"])
        for index, value in enumerate(expand_values(series["values"])):
            if value is not _MISSING:
                engine.history.append(key, index * interval, None if value is _STALE else float(value))  # type: ignore[arg-type]
    checks = sorted(test.get("alert_rule_test", []), key=lambda check: duration_seconds(check["eval_time"]))
    mismatches = []
    now = 0.0
    last = max((duration_seconds(check["eval_time"]) for check in checks), default=0.0)
    while now <= last:
        engine.evaluate(now)
        for check in checks:
            if now <= duration_seconds(check["eval_time"]) < now + evaluation_interval:
                mismatch = _compare(engine, test["name"], check)
                if mismatch:
                    mismatches.append(mismatch)
        now += evaluation_interval
    return mismatches


def _compare(engine: AlertEngine, name: str, check: dict[str, Any]) -> Mismatch | None:
    rules = {rule.name: rule for rule in engine.rules}
    rule = rules[check["alertname"]]
    expected = sorted(
        (
            labels_of({str(k): str(v) for k, v in alert.get("exp_labels", {}).items()}),
            str(alert.get("exp_annotations", {}).get("summary", "")),
        )
        for alert in check.get("exp_alerts") or []
    )
    got = sorted(
        (labels_of({**dict(alert.labels), "severity": rule.severity_label}), alert.summary)
        for alert in engine.alerts(FIRING)
        if alert.name == rule.name
    )
    if expected == got:
        return None
    return Mismatch(name, rule.name, str(check["eval_time"]), expected, got)


def _no_fetch(url: str, timeout: float) -> str:
    raise AssertionError("a replay never scrapes")
