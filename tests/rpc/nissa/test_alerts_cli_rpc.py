"""`esper alerts --mesh FILE` against a real in-process Nissa whose alerts come from a real AlertEngine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from esper.cli import alerts as alerts_cli
from esper.cli.main import main
from esper.leyline.v1.services import NISSA_SERVICE
from esper.mesh.hosting import host
from esper.nissa.alerts import AlertEngine, NissaAlertsConfig, parse_target
from esper.nissa.service import NissaService
from tests.support.alert_targets import Clock, FakeTargets
from tests.support.servers import ServerFactory

JOBS = ("tamiyo", "urza", "karn", "simic")


def url(job: str) -> str:
    return f"http://127.0.0.1:{9460 + JOBS.index(job)}/metrics"


@pytest.fixture
def mesh_file(tmp_path: Path, grpc_server: ServerFactory) -> Path:
    """A Nissa whose engine saw every job go down, then karn come back (so karn's alert resolved)."""
    targets, clock = FakeTargets(), Clock()
    config = NissaAlertsConfig(
        static_targets=[parse_target(f"{job}={url(job)}") for job in JOBS],
        for_overrides={"tamiyo_unavailable": 0, "service_down": 0},
    )
    engine = AlertEngine(config, fetch=targets.fetch, clock=clock)
    engine.scrape_and_evaluate()
    targets.served[url("karn")] = CollectorRegistry()
    clock.advance(5)
    engine.scrape_and_evaluate()
    server = grpc_server([host(NISSA_SERVICE.bind(NissaService(None, None, engine.alerts)))], service_name="nissa")
    mesh = tmp_path / "mesh.json"
    mesh.write_text(json.dumps({"nissa": {"grpc": server.address, "pid": 1}}), encoding="utf-8")
    return mesh


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, list[dict[str, object]]]:
    assert main(["alerts", *args, "--json"]) == 0
    document: dict[str, list[dict[str, object]]] = json.loads(capsys.readouterr().out)
    return document


def test_alerts_json_follows_every_page_and_shows_firing_and_resolved(
    mesh_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts_cli, "PAGE_SIZE", 2)
    alerts = run_json(capsys, "--mesh", str(mesh_file))["alerts"]
    assert sorted((a["name"], a["labels"]["job"], a["state"]) for a in alerts) == [  # type: ignore[index]
        ("service_down", "karn", "RESOLVED"),
        ("service_down", "simic", "FIRING"),
        ("service_down", "urza", "FIRING"),
        ("tamiyo_unavailable", "tamiyo", "FIRING"),
    ]
    tamiyo = next(a for a in alerts if a["name"] == "tamiyo_unavailable")
    assert set(tamiyo) == {
        "alert_id", "name", "state", "severity", "summary", "labels", "value", "threshold", "start_time",
        "resolve_time",
    }  # fmt: skip
    assert tamiyo["severity"] == "CRITICAL" and tamiyo["value"] == 0.0 and tamiyo["threshold"] == 0.0
    assert tamiyo["labels"] == {"job": "tamiyo", "instance": "127.0.0.1:9460"}
    assert tamiyo["summary"] == "tamiyo at 127.0.0.1:9460 does not answer its metrics scrape (up=0)"
    assert str(tamiyo["start_time"]).endswith("Z") and tamiyo["resolve_time"] is None
    karn = next(a for a in alerts if a["state"] == "RESOLVED")
    assert str(karn["resolve_time"]).endswith("Z")


def test_alerts_state_filter(mesh_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resolved = run_json(capsys, "--mesh", str(mesh_file), "--state", "resolved")["alerts"]
    assert [(a["name"], a["state"]) for a in resolved] == [("service_down", "RESOLVED")]
    firing = run_json(capsys, "--mesh", str(mesh_file), "--state", "firing")["alerts"]
    assert len(firing) == 3 and {a["state"] for a in firing} == {"FIRING"}


def test_alerts_table_has_one_line_per_alert(mesh_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--mesh", str(mesh_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert any(line.startswith("FIRING    CRITICAL  tamiyo_unavailable") for line in lines)
