"""AlertEngine: scrape fake targets with an injected clock, and check alerts pend, fire and resolve."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from esper.leyline.v1 import alert_pb2
from esper.nissa.alerts import AlertEngine, NissaAlertsConfig, parse_target
from esper.nissa.alerts.engine import FIRING, RESOLVED
from esper.nissa.alerts.series import SeriesKey, labels_of
from tests.support.alert_targets import Clock, FakeTargets

TAMIYO_URL = "http://127.0.0.1:9455/metrics"
TOLARIA_URL = "http://127.0.0.1:9464/metrics"


def write_mesh(path: Path, document: dict[str, object]) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


def engine_for(targets: FakeTargets, clock: Clock, **config: object) -> AlertEngine:
    return AlertEngine(NissaAlertsConfig(**config), fetch=targets.fetch, clock=clock)  # type: ignore[arg-type]


def cycle(engine: AlertEngine, clock: Clock, seconds: float) -> None:
    clock.advance(seconds)
    engine.scrape_and_evaluate()


def test_tamiyo_that_stops_answering_fires_after_its_for_and_resolves_when_back(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.json"
    write_mesh(mesh, {"tamiyo": {"grpc": "127.0.0.1:50055", "pid": 7, "metrics": "127.0.0.1:9455"}})
    targets, clock = FakeTargets({TAMIYO_URL: CollectorRegistry()}), Clock()
    engine = engine_for(targets, clock, mesh_file=mesh)
    engine.scrape_and_evaluate()
    del targets.served[TAMIYO_URL]
    cycle(engine, clock, 5)  # down: pending
    cycle(engine, clock, 5)
    assert engine.alerts() == []
    cycle(engine, clock, 10)  # down for 15 s
    [firing] = engine.alerts()
    assert (firing.name, firing.state) == ("tamiyo_unavailable", FIRING)
    assert firing.severity == alert_pb2.ALERT_SEVERITY_CRITICAL
    assert dict(firing.labels) == {"job": "tamiyo", "instance": "127.0.0.1:9455"}
    assert (firing.value, firing.threshold) == (0.0, 0.0)
    assert firing.summary == "tamiyo at 127.0.0.1:9455 does not answer its metrics scrape (up=0)"
    assert firing.start_time.ToSeconds() == int(clock.now) and not firing.HasField("resolve_time")

    targets.served[TAMIYO_URL] = CollectorRegistry()
    cycle(engine, clock, 5)
    [resolved] = engine.alerts()
    assert (resolved.state, resolved.alert_id) == (RESOLVED, firing.alert_id)
    assert resolved.resolve_time.ToSeconds() == int(clock.now)
    assert engine.alerts(FIRING) == [] and engine.alerts(RESOLVED) == [resolved]

    del targets.served[TAMIYO_URL]
    for _ in range(4):
        cycle(engine, clock, 5)
    again, first = engine.alerts()
    assert (again.state, first.state) == (FIRING, RESOLVED)
    assert again.alert_id != first.alert_id


def test_targets_come_from_the_mesh_file_reread_each_cycle_and_only_entries_with_metrics(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.json"
    targets, clock = FakeTargets(), Clock()
    engine = engine_for(targets, clock, mesh_file=mesh)
    engine.scrape_and_evaluate()  # no mesh file yet: nothing to scrape
    assert targets.fetched == []
    write_mesh(
        mesh,
        {
            "nats": "nats://127.0.0.1:4222",
            "urza": {"grpc": "127.0.0.1:50051", "pid": 5},
            "tamiyo": {"grpc": "127.0.0.1:50055", "pid": 7, "metrics": "127.0.0.1:9455"},
        },
    )
    cycle(engine, clock, 5)
    assert targets.fetched == [TAMIYO_URL]
    mesh.write_text("{half a file", encoding="utf-8")
    cycle(engine, clock, 5)
    assert targets.fetched == [TAMIYO_URL]


def test_a_target_that_leaves_the_mesh_goes_stale_and_its_alert_resolves(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.json"
    write_mesh(mesh, {"tamiyo": {"grpc": "127.0.0.1:50055", "metrics": "127.0.0.1:9455"}})
    targets, clock = FakeTargets(), Clock()
    engine = engine_for(targets, clock, mesh_file=mesh, for_overrides={"tamiyo_unavailable": 0})
    engine.scrape_and_evaluate()
    assert [a.state for a in engine.alerts()] == [FIRING]
    write_mesh(mesh, {})
    cycle(engine, clock, 5)
    assert [a.state for a in engine.alerts()] == [RESOLVED]
    up = SeriesKey("up", labels_of({"job": "tamiyo", "instance": "127.0.0.1:9455"}))
    assert [points[-1][1] for key, points in engine.history.series("up") if key == up] == [None]


def test_a_static_target_answering_garbage_is_down(tmp_path: Path) -> None:
    targets, clock = FakeTargets({"http://127.0.0.1:9461/metrics": "<html>not metrics</html>"}), Clock()
    engine = engine_for(
        targets, clock, static_targets=[parse_target("urza=127.0.0.1:9461")], for_overrides={"service_down": 0}
    )
    engine.scrape_and_evaluate()
    [alert] = engine.alerts()
    assert (alert.name, dict(alert.labels)) == ("service_down", {"job": "urza", "instance": "127.0.0.1:9461"})


def test_isolation_violation_after_a_counter_reset_fires_and_a_bare_reset_does_not() -> None:
    before, after = CollectorRegistry(), CollectorRegistry()
    violations_before = Counter("esper_kasmina_isolation_violations_total", "v", registry=before)
    violations_before.inc(5)
    Counter("esper_kasmina_isolation_violations_total", "v", registry=after)
    targets, clock = FakeTargets({TOLARIA_URL: before}), Clock()
    engine = engine_for(targets, clock, static_targets=[parse_target(f"tolaria={TOLARIA_URL}")])
    for _ in range(3):
        cycle(engine, clock, 60)
    targets.served[TOLARIA_URL] = after  # the process restarted: the counter is back at 0
    cycle(engine, clock, 60)
    cycle(engine, clock, 60)
    assert engine.alerts() == []
    violations_after = after._names_to_collectors["esper_kasmina_isolation_violations_total"]
    assert isinstance(violations_after, Counter)
    violations_after.inc()
    cycle(engine, clock, 60)
    [alert] = engine.alerts()
    assert alert.name == "kasmina_isolation_violation" and alert.value > 0.99
    assert dict(alert.labels) == {"job": "tolaria", "instance": "127.0.0.1:9464"}


def test_hook_latency_p95_from_bucket_increases_fires_with_the_interpolated_value() -> None:
    registry = CollectorRegistry()
    hook = Histogram(
        "esper_tolaria_hook_duration_seconds", "h", ["phase"], buckets=(0.01, 0.025, 0.05), registry=registry
    )
    targets, clock = FakeTargets({TOLARIA_URL: registry}), Clock()
    engine = engine_for(
        targets,
        clock,
        static_targets=[parse_target(f"tolaria={TOLARIA_URL}")],
        for_overrides={"training_latency_high": 0},
    )
    engine.scrape_and_evaluate()
    for _ in range(3):
        # Each minute: 20 hooks under 10 ms and 80 between 10 and 25 ms; slow "controller" phases don't count.
        for _ in range(20):
            hook.labels(phase="total").observe(0.005)
        for _ in range(80):
            hook.labels(phase="total").observe(0.02)
            hook.labels(phase="controller").observe(0.04)
        cycle(engine, clock, 60)
    [alert] = engine.alerts()
    assert alert.name == "training_latency_high" and dict(alert.labels) == {"job": "tolaria"}
    # rank 95 of 100 lies 75/80 of the way through the (10 ms, 25 ms] bucket.
    assert abs(alert.value - (0.01 + 0.015 * 75 / 80)) < 1e-12
    assert alert.summary == "tolaria: p95 of the epoch-end hook over 5m is 0.02406 s (budget 0.018 s)"


def test_queue_depth_alerts_per_consumer_after_its_for() -> None:
    registry = CollectorRegistry()
    depth = Gauge("esper_oona_queue_depth", "d", ["consumer"], registry=registry)
    depth.labels(consumer="simic").set(2000)
    depth.labels(consumer="nissa").set(3)
    targets, clock = FakeTargets({"http://127.0.0.1:9466/metrics": registry}), Clock()
    engine = engine_for(targets, clock, static_targets=[parse_target("simic=127.0.0.1:9466")])
    engine.scrape_and_evaluate()
    cycle(engine, clock, 30)
    assert engine.alerts() == []
    cycle(engine, clock, 30)
    [alert] = engine.alerts()
    assert dict(alert.labels) == {"job": "simic", "consumer": "simic"}
    assert (alert.value, alert.threshold) == (2000.0, 1000.0)
    assert alert.summary == "simic: consumer simic has 2000 messages waiting (limit 1000)"


def test_resolved_alerts_are_bounded_and_listed_newest_first() -> None:
    targets, clock = FakeTargets(), Clock()
    engine = engine_for(
        targets,
        clock,
        static_targets=[parse_target(f"tamiyo={TAMIYO_URL}")],
        for_overrides={"tamiyo_unavailable": 0},
        max_resolved=2,
    )
    ids = []
    for _ in range(3):
        targets.served.pop(TAMIYO_URL, None)
        cycle(engine, clock, 5)
        ids.append(engine.alerts(FIRING)[0].alert_id)
        targets.served[TAMIYO_URL] = CollectorRegistry()
        cycle(engine, clock, 5)
    assert [alert.alert_id for alert in engine.alerts(RESOLVED)] == [ids[2], ids[1]]
    assert len(set(ids)) == 3
