"""Nissa's engine scraping real HTTP metrics endpoints listed in a mesh file, on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from esper.nissa.alerts import AlertEngine, NissaAlertsConfig
from esper.nissa.alerts.engine import FIRING, RESOLVED

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MetricsServer:
    """prometheus_client's own /metrics server on a loopback port, stoppable like a process going away."""

    def __init__(self, registry: CollectorRegistry, port: int) -> None:
        self.port = port
        self._httpd, self._thread = start_http_server(port, addr="127.0.0.1", registry=registry)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def tamiyo_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("esper_oona_queue_depth", "d", ["consumer"], registry=registry).labels(consumer="tamiyo").set(5000)
    return registry


@pytest.fixture
def tamiyo(tamiyo_registry: CollectorRegistry) -> Iterator[MetricsServer]:
    server = MetricsServer(tamiyo_registry, free_port())
    yield server
    server.stop()


def write_mesh(path: Path, metrics_port: int) -> None:
    document = {"tamiyo": {"grpc": "127.0.0.1:50055", "pid": 1, "metrics": f"127.0.0.1:{metrics_port}"}}
    path.write_text(json.dumps(document), encoding="utf-8")


def test_a_scraped_server_that_stops_fires_tamiyo_unavailable_then_resolves_when_it_returns(
    tmp_path: Path, tamiyo: MetricsServer, tamiyo_registry: CollectorRegistry
) -> None:
    mesh = tmp_path / "mesh.json"
    write_mesh(mesh, tamiyo.port)
    overrides = {"tamiyo_unavailable": 0, "oona_queue_depth": 0}
    engine = AlertEngine(NissaAlertsConfig(mesh_file=mesh, scrape_timeout_seconds=2, for_overrides=overrides))
    engine.scrape_and_evaluate()
    [queue] = engine.alerts(FIRING)
    assert queue.name == "oona_queue_depth"
    assert dict(queue.labels) == {"job": "tamiyo", "consumer": "tamiyo"} and queue.value == 5000

    tamiyo.stop()
    engine.scrape_and_evaluate()
    [down] = engine.alerts(FIRING)
    assert down.name == "tamiyo_unavailable"
    assert dict(down.labels) == {"job": "tamiyo", "instance": f"127.0.0.1:{tamiyo.port}"}
    # The stopped server's series went stale with its failed scrape, so its queue alert resolved.
    assert [alert.name for alert in engine.alerts(RESOLVED)] == ["oona_queue_depth"]

    back = MetricsServer(tamiyo_registry, free_port())
    try:
        write_mesh(mesh, back.port)  # restarted on another port: the mesh file is re-read
        engine.scrape_and_evaluate()
    finally:
        back.stop()
    assert {alert.name for alert in engine.alerts(RESOLVED)} == {"oona_queue_depth", "tamiyo_unavailable"}
    assert [alert.name for alert in engine.alerts(FIRING)] == ["oona_queue_depth"]


def test_a_server_that_accepts_but_never_answers_is_down_after_the_scrape_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        mesh = tmp_path / "mesh.json"
        write_mesh(mesh, silent.getsockname()[1])
        config = NissaAlertsConfig(mesh_file=mesh, scrape_timeout_seconds=0.3, for_overrides={"tamiyo_unavailable": 0})
        engine = AlertEngine(config)
        engine.scrape_and_evaluate()
    [down] = engine.alerts(FIRING)
    assert down.name == "tamiyo_unavailable"
