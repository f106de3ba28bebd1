"""Tamiyo on an in-process Oona: what a step publishes, telemetry observed for GetStatus (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esper.errors import NotFound
from esper.leyline.v1 import control_pb2, lifecycle_pb2, tamiyo_pb2, telemetry_pb2
from esper.oona.api import ConsumerSpec
from esper.oona.config import OonaConfig
from esper.oona.envelope import OpenedEnvelope
from esper.oona.memory import InProcessBus
from esper.oona.subjects import command_subjects, field_report_subject, telemetry_subject
from esper.tamiyo.bus import PublishingTamiyo, TelemetryIntake
from esper.tamiyo.controller import TamiyoController
from tests.support.tamiyo import PLATEAU, RUN, FakeKernels, SeedSimulator, kernel, make_controller, run_epochs

S = lifecycle_pb2
ACCURACIES = [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.62, 0.65]


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    with InProcessBus(OonaConfig()) as bus:
        yield bus


def _controller() -> TamiyoController:
    return make_controller(FakeKernels([kernel("k1"), kernel("k2")]))


def _sim() -> SeedSimulator:
    sim = SeedSimulator()
    sim.seeds["net.3"].dead = 0.4
    return sim


class Received:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, opened: OpenedEnvelope) -> None:
        self.messages.append((opened.envelope.idempotency_key, type(opened.message).__name__))


def test_a_step_publishes_its_commands_and_field_reports_keyed_by_their_ids(bus: InProcessBus) -> None:
    commands, reports = Received(), Received()
    bus.subscribe(ConsumerSpec("kasmina", command_subjects(RUN)), commands)
    bus.subscribe(ConsumerSpec("simic", (field_report_subject(RUN),)), reports)
    tamiyo = PublishingTamiyo(_controller(), bus)

    responses = run_epochs(tamiyo, _sim(), ACCURACIES)
    assert bus.flush(10.0)

    issued = [c for r in responses for c in r.commands]
    reported = [f for r in responses for f in r.field_reports]
    assert issued and reported
    assert commands.messages == [(c.command_id, "AdaptationCommand") for c in issued]
    assert reports.messages == [(f.report_id, "FieldReport") for f in reported]
    assert tamiyo.counts() == (len(issued) + len(reported), 0)


def test_publishing_changes_no_decision(bus: InProcessBus) -> None:
    published = run_epochs(PublishingTamiyo(_controller(), bus), _sim(), ACCURACIES)
    plain = run_epochs(_controller(), _sim(), ACCURACIES)
    assert published == plain


def test_a_bus_that_refuses_never_fails_the_step(bus: InProcessBus) -> None:
    tamiyo = PublishingTamiyo(_controller(), bus)
    bus.close()
    responses = run_epochs(tamiyo, _sim(), ACCURACIES)
    published, refused = tamiyo.counts()
    assert published == 0
    assert refused == sum(len(r.commands) + len(r.field_reports) for r in responses) > 0


def _telemetry(
    run_id: str, seed_id: str, epoch: int, stage: S.SeedStage = S.SEED_STAGE_DORMANT, step: int = 0
) -> telemetry_pb2.SeedTelemetry:
    return telemetry_pb2.SeedTelemetry(run_id=run_id, seed_id=seed_id, epoch=epoch, stage=stage, global_step=step)


def test_observed_telemetry_keeps_each_seeds_newest_report() -> None:
    controller = _controller()
    assert controller.observe_telemetry(_telemetry("run-x", "a", 3, step=30))
    assert not controller.observe_telemetry(_telemetry("run-x", "a", 2, step=99))
    assert controller.observe_telemetry(_telemetry("run-x", "a", 3, step=31))
    assert controller.observe_telemetry(_telemetry("run-x", "b", 1))
    assert not controller.observe_telemetry(_telemetry("", "b", 1))
    kept = controller.observed_telemetry("run-x")
    assert [(t.seed_id, t.epoch, t.global_step) for t in kept] == [("a", 3, 31), ("b", 1, 0)]


def test_get_status_answers_for_a_run_known_only_from_telemetry(bus: InProcessBus) -> None:
    controller = _controller()
    TelemetryIntake(controller).subscribe(bus)
    with pytest.raises(NotFound):
        controller.get_status(tamiyo_pb2.GetStatusRequest(run_id="run-x"))
    for seed_id, stage in (("blocks.0", S.SEED_STAGE_TRAINING), ("blocks.1", S.SEED_STAGE_DORMANT)):
        telemetry = _telemetry("run-x", seed_id, 5, stage)
        bus.publish(telemetry_subject("run-x", seed_id), bus.seal(telemetry, source="kasmina"))
    # A message of another kind on a telemetry subject is dropped, not observed.
    misrouted = bus.seal(control_pb2.FieldReport(report_id="r"), source="x")
    bus.publish(telemetry_subject("run-x", "blocks.2"), misrouted)
    assert bus.flush(10.0)

    status = controller.get_status(tamiyo_pb2.GetStatusRequest(run_id="run-x"))
    assert (status.current_epoch, status.active_adaptations, status.tracked_runs) == (5, 1, 1)
    assert [t.seed_id for t in controller.observed_telemetry("run-x")] == ["blocks.0", "blocks.1"]
