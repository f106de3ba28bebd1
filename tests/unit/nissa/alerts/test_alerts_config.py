"""NissaAlertsConfig and the command-line helpers refuse bad values, naming the field or the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.errors import InvalidArgument
from esper.nissa.alerts import NissaAlertsConfig, ScrapeTarget, parse_for_override, parse_target


def field_of(error: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return error.value.violations[0].field


def test_defaults_evaluate_every_5_seconds_with_no_targets() -> None:
    config = NissaAlertsConfig()
    assert (config.evaluation_interval_seconds, config.static_targets, config.mesh_file) == (5.0, (), None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"evaluation_interval_seconds": 0}, "evaluation_interval_seconds"),
        ({"scrape_timeout_seconds": -1}, "scrape_timeout_seconds"),
        ({"max_resolved": 0}, "max_resolved"),
        ({"for_overrides": {"no_such_rule": 1.0}}, "for_overrides"),
        ({"for_overrides": {"oona_queue_depth": -1.0}}, "for_overrides.oona_queue_depth"),
        ({"static_targets": [ScrapeTarget("urza", "ftp://host/metrics")]}, "static_targets"),
    ],
)
def test_a_bad_config_value_is_refused_naming_its_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        NissaAlertsConfig(**kwargs)  # type: ignore[arg-type]
    assert field_of(error) == field


def test_the_config_is_frozen_and_keeps_its_own_copy_of_overrides(tmp_path: Path) -> None:
    overrides = {"tamiyo_unavailable": 2.0}
    config = NissaAlertsConfig(mesh_file=tmp_path / "mesh.json", for_overrides=overrides)
    overrides["tamiyo_unavailable"] = 99.0
    assert config.for_overrides["tamiyo_unavailable"] == 2.0
    with pytest.raises(AttributeError):
        config.mesh_file = None  # type: ignore[misc]


def test_for_override_parses_name_and_seconds() -> None:
    assert parse_for_override("tamiyo_unavailable=2.5") == ("tamiyo_unavailable", 2.5)
    assert parse_for_override(" oona_queue_depth = 0") == ("oona_queue_depth", 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tamiyo_unavalable=5", "no alert rule named 'tamiyo_unavalable' (rules: kasmina_isolation_violation, "),
        ("tamiyo_unavailable", "expected RULE=SECONDS"),
        ("tamiyo_unavailable=soon", "expected a number of seconds, got 'soon'"),
        ("tamiyo_unavailable=-3", "must be >= 0"),
    ],
)
def test_a_bad_for_override_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        parse_for_override(text)


def test_a_target_is_name_equals_url_or_address() -> None:
    assert parse_target("tamiyo=127.0.0.1:9455") == ScrapeTarget("tamiyo", "http://127.0.0.1:9455/metrics")
    assert parse_target("urza=http://h:1/m").instance == "h:1"
    with pytest.raises(InvalidArgument, match="expected NAME=URL"):
        parse_target("http://127.0.0.1:9455/metrics")
