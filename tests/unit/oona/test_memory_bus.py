"""InProcessBus: the Bus contract in one process, delivered deterministically."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from esper.errors import FailedPrecondition, InvalidArgument
from esper.leyline.v1 import bus_pb2, control_pb2, lifecycle_pb2
from esper.oona import subjects
from esper.oona.api import AlertKind, BusAlert, ConsumerSpec
from esper.oona.config import OonaConfig
from esper.oona.envelope import OpenedEnvelope, seal, signature
from esper.oona.memory import InProcessBus
from esper.state.samples import sample_adaptation_command, sample_field_report

SECRET = b"0123456789abcdef-shared"
RUN = "run-1"
NORMAL_PRIORITY = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL
REPORTS = subjects.field_report_subject(RUN)
NORMAL = subjects.command_subject(RUN, lifecycle_pb2.MESSAGE_PRIORITY_NORMAL)
EMERGENCY = subjects.command_subject(RUN, lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A handler that records idempotency keys and can be told to fail."""

    def __init__(self, failures: dict[str, int] | None = None) -> None:
        self.keys: list[str] = []
        self.failures = dict(failures or {})

    def __call__(self, opened: OpenedEnvelope) -> None:
        key = opened.idempotency_key
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            raise RuntimeError(f"transient failure on {key}")
        self.keys.append(key)


def make_bus(**overrides: object) -> tuple[InProcessBus, list[BusAlert]]:
    alerts: list[BusAlert] = []
    settings: dict[str, object] = {"hmac_secret": SECRET, "hmac_key_id": "k1", "max_deliver": 3}
    clock = overrides.pop("clock", None)
    settings.update(overrides)
    config = OonaConfig(**settings)  # type: ignore[arg-type]
    bus = InProcessBus(config, on_alert=alerts.append, **({"clock": clock} if clock else {}))  # type: ignore[arg-type]
    return bus, alerts


def report(bus: InProcessBus, key: str) -> bus_pb2.BusEnvelope:
    return bus.seal(sample_field_report(), source="tamiyo", idempotency_key=key)


def command(bus: InProcessBus, key: str, *, emergency: bool = False) -> bus_pb2.BusEnvelope:
    priority = lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY if emergency else NORMAL_PRIORITY
    return bus.seal(sample_adaptation_command(), source="tamiyo", priority=priority, idempotency_key=key)


def test_published_messages_reach_the_handler_in_order_on_flush() -> None:
    bus, _ = make_bus()
    received: list[OpenedEnvelope] = []
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), received.append)
    for key in ("r1", "r2", "r3"):
        bus.publish(REPORTS, report(bus, key))
    assert received == []  # nothing is delivered behind the caller's back
    assert bus.flush(5.0)
    assert [o.idempotency_key for o in received] == ["r1", "r2", "r3"]
    assert isinstance(received[0].message, control_pb2.FieldReport)
    stats = bus.stats()
    assert (stats.published, stats.handled, stats.queue_depth) == (3, 3, 0)


def test_a_durable_created_later_replays_the_stream_and_resumes_where_it_stopped() -> None:
    bus, _ = make_bus()
    bus.publish(REPORTS, report(bus, "early"))
    recorder = Recorder()
    subscription = bus.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
    bus.flush()
    subscription.stop()
    bus.publish(REPORTS, report(bus, "while-stopped"))
    bus.flush()
    assert recorder.keys == ["early"]
    bus.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
    bus.flush()
    assert recorder.keys == ["early", "while-stopped"]


def test_work_queue_messages_go_to_one_consumer_only() -> None:
    bus, _ = make_bus()
    jobs = subjects.compile_job_subject("fast")
    job = bus.seal(control_pb2.FieldReport(), source="urza")  # any payload; type is checked on open
    bus.publish(jobs, job)
    first = Recorder()
    bus.subscribe(ConsumerSpec("tezzeret-a", (jobs,)), first)
    bus.flush()
    second = Recorder()
    bus.subscribe(ConsumerSpec("tezzeret-b", (jobs,)), second)
    bus.flush()
    assert first.keys == [job.idempotency_key] and second.keys == []


def test_a_repeated_key_is_dropped_at_publish_within_the_window_and_by_the_consumer_after() -> None:
    clock = FakeClock()
    bus, _ = make_bus(clock=clock, duplicate_window_seconds=60.0)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    bus.publish(REPORTS, report(bus, "same"))
    bus.publish(REPORTS, report(bus, "same"))
    clock.now += 61.0
    bus.publish(REPORTS, report(bus, "same"))  # outside the window: stored again
    bus.flush()
    assert recorder.keys == ["same"]
    stats = bus.stats()
    assert (stats.published, stats.publish_duplicates, stats.duplicates_dropped) == (2, 1, 1)


def test_pending_emergency_commands_are_handled_before_normal_ones() -> None:
    bus, _ = make_bus()
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("kasmina", subjects.command_subjects(RUN)), recorder)
    for key in ("n1", "n2", "n3"):
        bus.publish(NORMAL, command(bus, key))
    bus.publish(EMERGENCY, command(bus, "e1", emergency=True))
    bus.flush()
    assert recorder.keys == ["e1", "n1", "n2", "n3"]


def test_an_emergency_published_by_a_handler_jumps_the_remaining_normals() -> None:
    bus, _ = make_bus()
    keys: list[str] = []

    def handle(opened: OpenedEnvelope) -> None:
        keys.append(opened.idempotency_key)
        if opened.idempotency_key == "n1":
            bus.publish(EMERGENCY, command(bus, "e1", emergency=True))
            assert bus.flush(1.0)  # re-entrant flush is a no-op, not a deadlock

    bus.subscribe(ConsumerSpec("kasmina", subjects.command_subjects(RUN)), handle)
    for key in ("n1", "n2"):
        bus.publish(NORMAL, command(bus, key))
    bus.flush()
    assert keys == ["n1", "e1", "n2"]


def test_a_failing_handler_is_retried_then_dead_lettered_and_the_consumer_goes_on() -> None:
    bus, alerts = make_bus(max_deliver=3)
    recorder = Recorder(failures={"flaky": 1, "broken": 99})
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    for key in ("flaky", "broken", "fine"):
        bus.publish(REPORTS, report(bus, key))
    bus.flush()
    assert recorder.keys == ["flaky", "fine"]
    [letter] = bus.dead_letters()
    assert (letter.subject, letter.reason) == (REPORTS, "MAX_DELIVERIES")
    assert bus_pb2.BusEnvelope.FromString(letter.data).idempotency_key == "broken"
    assert "transient failure on broken" in letter.detail
    stats = bus.stats()
    assert stats.handler_failures == 1 + 3
    assert stats.redelivered == 1 + 2
    assert stats.dead_lettered == {"MAX_DELIVERIES": 1}
    assert [a.kind for a in alerts] == [AlertKind.DEAD_LETTER]


def test_forged_unknown_and_newer_envelopes_are_dead_lettered_and_counted() -> None:
    bus, _ = make_bus()
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    forged = seal(sample_field_report(), source="mallory", secret=b"not-the-shared-secret", key_id="k1")
    newer = seal(sample_field_report(), source="future", secret=SECRET, key_id="k1", schema_version=2)
    unknown = seal(sample_field_report(), source="future")
    unknown.message_type = 42  # type: ignore[assignment]
    unknown.hmac_key_id = "k1"
    unknown.hmac_sha256 = signature(unknown, SECRET)
    for envelope in (forged, newer, unknown, report(bus, "good")):
        bus.publish(REPORTS, envelope)
    bus.flush()
    assert recorder.keys == ["good"]
    assert [letter.reason for letter in bus.dead_letters()] == [
        "BAD_SIGNATURE",
        "SCHEMA_VERSION_UNSUPPORTED",
        "UNKNOWN_MESSAGE_TYPE",
    ]
    assert bus.dead_letters()[0].data == forged.SerializeToString()
    assert bus.stats().dead_lettered == {
        "BAD_SIGNATURE": 1,
        "SCHEMA_VERSION_UNSUPPORTED": 1,
        "UNKNOWN_MESSAGE_TYPE": 1,
    }


def test_queue_depth_past_the_threshold_turns_conservative_mode_on_then_off() -> None:
    bus, alerts = make_bus(conservative_queue_depth=2)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder).stop()  # a durable with no subscriber now
    for key in ("a", "b", "c"):
        bus.publish(REPORTS, report(bus, key))
    assert bus.stats().queue_depth == 3 and bus.conservative
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    bus.flush()
    assert not bus.stats().conservative and bus.stats().queue_depth == 0
    assert [a.kind for a in alerts] == [AlertKind.CONSERVATIVE_ON, AlertKind.CONSERVATIVE_OFF]


def test_a_worker_thread_delivers_without_being_asked_and_flush_waits_for_it() -> None:
    config = OonaConfig()
    handled = threading.Event()
    seen: list[str] = []

    def handle(opened: OpenedEnvelope) -> None:
        seen.append(opened.idempotency_key)
        if len(seen) == 50:
            handled.set()

    with InProcessBus(config, worker_thread=True) as bus:
        bus.subscribe(ConsumerSpec("karn", (REPORTS,)), handle)
        for index in range(50):
            bus.publish(REPORTS, report(bus, f"k{index}"))
        assert bus.flush(10.0)
        assert handled.is_set()
        assert seen == [f"k{index}" for index in range(50)]


def test_bad_subjects_duplicate_subscribers_and_a_closed_bus_are_refused() -> None:
    bus, _ = make_bus()
    with pytest.raises(InvalidArgument):
        bus.publish("esper.nowhere.x", report(bus, "a"))
    with pytest.raises(InvalidArgument):
        bus.subscribe(ConsumerSpec("dlq", ("esper.dlq.>",)), Recorder())
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), Recorder())
    with pytest.raises(FailedPrecondition):
        bus.subscribe(ConsumerSpec("karn", (REPORTS,)), Recorder())
    with pytest.raises(FailedPrecondition):
        bus.subscribe(ConsumerSpec("karn", (NORMAL,)), Recorder())
    bus.close()
    with pytest.raises(FailedPrecondition):
        bus.publish(REPORTS, report(bus, "late"))


OTHER_RUN_REPORTS = subjects.field_report_subject("run-2")


def _captured(bus: InProcessBus, key: str) -> bytes:
    """What an eavesdropper on the wire holds: the bytes of a report the bus published."""
    envelope = report(bus, key)
    bus.publish(REPORTS, envelope)
    return envelope.SerializeToString()


def test_a_signed_envelope_is_bound_to_its_subject_and_refused_on_another() -> None:
    clock = FakeClock()
    bus, _ = make_bus(clock=clock)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("simic", ("esper.field_reports.>",)), recorder)
    captured = _captured(bus, "r1")
    assert bus_pb2.BusEnvelope.FromString(captured).subject == REPORTS
    clock.now += 3600  # past the publish-side duplicate window, as a replay under a fresh message id would be
    bus.publish(OTHER_RUN_REPORTS, bus_pb2.BusEnvelope.FromString(captured))
    bus.flush()
    assert recorder.keys == ["r1"]
    [letter] = bus.dead_letters()
    assert (letter.subject, letter.reason) == (OTHER_RUN_REPORTS, "BAD_SIGNATURE")
    assert "signed for subject" in letter.detail


def test_a_replayed_envelope_is_dead_lettered_even_after_a_restart(tmp_path: Path) -> None:
    state = str(tmp_path)
    bus, _ = make_bus(state_dir=state)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
    captured = _captured(bus, "r1")
    bus.flush()
    bus.close()
    restarted, _ = make_bus(state_dir=state)
    again = Recorder()
    restarted.subscribe(ConsumerSpec("simic", (REPORTS,)), again)
    restarted.publish(REPORTS, bus_pb2.BusEnvelope.FromString(captured))
    restarted.publish(REPORTS, report(restarted, "r2"))
    restarted.flush()
    assert again.keys == ["r2"]
    assert [letter.reason for letter in restarted.dead_letters()] == ["REPLAYED"]
    assert restarted.stats().dead_lettered == {"REPLAYED": 1}


def test_a_second_publication_under_a_handled_key_is_a_repeat_not_a_replay() -> None:
    clock = FakeClock()
    bus, _ = make_bus(clock=clock)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
    bus.publish(REPORTS, report(bus, "same-report"))
    bus.flush()
    clock.now += 3600
    later = bus.seal(sample_field_report(), source="tolaria", idempotency_key="same-report")
    bus.publish(REPORTS, later)
    bus.flush()
    assert recorder.keys == ["same-report"]
    assert bus.dead_letters() == [] and bus.stats().duplicates_dropped == 1


def test_a_stale_envelope_is_dead_lettered() -> None:
    bus, _ = make_bus(max_age_seconds=60.0)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
    old = bus.seal(sample_field_report(), source="tamiyo", idempotency_key="old")
    old.publish_time.FromSeconds(old.publish_time.seconds - 3600)
    old.hmac_sha256 = signature(old, SECRET)
    bus.publish(REPORTS, old)
    bus.flush()
    assert recorder.keys == []
    [letter] = bus.dead_letters()
    assert letter.reason == "STALE" and "at most 60 s" in letter.detail
