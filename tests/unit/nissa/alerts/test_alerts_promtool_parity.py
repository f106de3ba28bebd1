"""Nissa's Python evaluation gives the alerts promtool expects from the Prometheus rule file.

Every case of deploy/prometheus/tests/*.yml is replayed through AlertEngine (the
integration test runs the same files through promtool), so the PromQL and its
Python twin cannot drift apart without a failing test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.nissa.alerts.series import SeriesKey
from tests.unit.nissa.alerts.promtool_files import expand_values, load, promtool_test_files, replay, series_key


@pytest.mark.parametrize("path", promtool_test_files(), ids=lambda path: path.name)
def test_python_rules_give_the_alerts_promtool_expects(path: Path) -> None:
    document = load(path)
    mismatches = [mismatch for test in document["tests"] for mismatch in replay(document, test)]
    assert mismatches == []


def test_the_replay_sees_a_wrong_expectation() -> None:
    document = load(next(path for path in promtool_test_files() if path.name == "up.test.yml"))
    test = document["tests"][0]
    for check in test["alert_rule_test"]:
        for alert in check.get("exp_alerts") or []:
            alert["exp_annotations"]["summary"] = "something else"
    mismatches = replay(document, test)
    assert [m.eval_time for m in mismatches] == ["45s"]
    assert mismatches[0].got[0][1] == "tamiyo at 127.0.0.1:50055 does not answer its metrics scrape (up=0)"


def test_the_replay_reads_promtools_expanding_notation() -> None:
    assert expand_values("1 _ 0+2x2 5-1x1 _x2 3x1") == [
        1.0,
        expand_values("_")[0],
        0.0,
        2.0,
        4.0,
        5.0,
        4.0,
        *expand_values("_x2"),
        3.0,
        3.0,
    ]
    assert len(expand_values("stale")) == 1
    assert series_key('up{job="tamiyo", instance="a:1"}') == SeriesKey("up", (("instance", "a:1"), ("job", "tamiyo")))
