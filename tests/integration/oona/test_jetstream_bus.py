"""JetStreamBus against a real nats-server: dedup, redelivery, dead letters, priority, outages."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import nats
import pytest

from esper.errors import FailedPrecondition, InvalidArgument, Unavailable
from esper.leyline.v1 import bus_pb2, lifecycle_pb2
from esper.oona import subjects
from esper.oona.api import AlertKind, BusAlert, ConsumerSpec
from esper.oona.config import OonaConfig
from esper.oona.envelope import OpenedEnvelope, seal, signature
from esper.oona.jetstream import JetStreamBus
from esper.state.samples import sample_adaptation_command, sample_field_report
from tests.support.nats import NatsServer, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = b"0123456789abcdef-shared"
RUN = "run-1"
REPORTS = subjects.field_report_subject(RUN)
NORMAL = subjects.command_subject(RUN, lifecycle_pb2.MESSAGE_PRIORITY_NORMAL)
EMERGENCY = subjects.command_subject(RUN, lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY)
WAIT = 15.0


class Recorder:
    """Records handled idempotency keys (thread-safe); fails chosen keys a number of times."""

    def __init__(self, failures: dict[str, int] | None = None) -> None:
        self.keys: list[str] = []
        self.deliveries: list[str] = []
        self.failures = dict(failures or {})
        self._lock = threading.Lock()

    def __call__(self, opened: OpenedEnvelope) -> None:
        key = opened.idempotency_key
        with self._lock:
            self.deliveries.append(key)
            if self.failures.get(key, 0) > 0:
                self.failures[key] -= 1
                raise RuntimeError(f"handler failure on {key}")
            self.keys.append(key)

    def count(self) -> int:
        with self._lock:
            return len(self.keys)


BusFactory = Callable[..., JetStreamBus]


@pytest.fixture
def make_bus(nats_server: NatsServer) -> Iterator[BusFactory]:
    buses: list[JetStreamBus] = []

    def make(*, alerts: list[BusAlert] | None = None, **overrides: object) -> JetStreamBus:
        settings: dict[str, object] = {
            "url": nats_server.url,
            "hmac_secret": SECRET,
            "hmac_key_id": "k1",
            "ack_wait_seconds": 1.0,
            "max_deliver": 3,
            "redelivery_delay_seconds": 0.05,
            "fetch_wait_seconds": 0.2,
            "reconnect_wait_seconds": 0.1,
            "publish_timeout_seconds": 1.0,
        }
        settings.update(overrides)
        bus = JetStreamBus(OonaConfig(**settings), on_alert=alerts.append if alerts is not None else None)  # type: ignore[arg-type]
        buses.append(bus.start())
        return bus

    yield make
    for bus in buses:
        bus.close(timeout=1.0)


def report(bus: JetStreamBus, key: str) -> bus_pb2.BusEnvelope:
    return bus.seal(sample_field_report(), source="tamiyo", idempotency_key=key)


def command(bus: JetStreamBus, key: str, priority: lifecycle_pb2.MessagePriority) -> bus_pb2.BusEnvelope:
    return bus.seal(sample_adaptation_command(), source="tamiyo", priority=priority, idempotency_key=key)


def stream_subjects(url: str, stream: str) -> list[str]:
    """Subjects of every message stored in a stream, read with plain nats-py."""

    async def read() -> list[str]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            found = []
            for sequence in range(info.state.first_seq, info.state.last_seq + 1):
                found.append((await js.get_msg(stream, sequence)).subject or "")
            return found if info.state.messages else []
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_repeated_idempotency_key_is_stored_once(make_bus: BusFactory, nats_server: NatsServer) -> None:
    bus = make_bus()
    for key in ("a", "a", "b", "a"):
        bus.publish(REPORTS, report(bus, key))
    assert bus.flush(WAIT)
    assert stream_subjects(nats_server.url, "ESPER_FIELD_REPORTS") == [REPORTS, REPORTS]
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    eventually(lambda: recorder.count() == 2, timeout=WAIT)
    stats = bus.stats()
    assert (stats.published, stats.publish_duplicates, stats.duplicates_dropped) == (4, 2, 0)
    assert recorder.keys == ["a", "b"]


def test_a_failing_handler_gets_the_message_again(make_bus: BusFactory) -> None:
    bus = make_bus()
    recorder = Recorder(failures={"flaky": 1})
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    bus.publish(REPORTS, report(bus, "flaky"))
    eventually(lambda: recorder.count() == 1, timeout=WAIT)
    assert recorder.deliveries == ["flaky", "flaky"]
    stats = bus.stats()
    assert (stats.handler_failures, stats.redelivered, stats.handled) == (1, 1, 1)
    assert stats.dead_lettered_total == 0


def test_a_message_never_acked_is_redelivered_after_the_ack_wait(make_bus: BusFactory) -> None:
    entered, release = threading.Event(), threading.Event()

    def stuck(opened: OpenedEnvelope) -> None:
        entered.set()
        release.wait(WAIT)

    crashed = make_bus()
    crashed.subscribe(ConsumerSpec("simic", (REPORTS,)), stuck)
    crashed.publish(REPORTS, report(crashed, "lost-ack"))
    try:
        assert entered.wait(WAIT)
        crashed.close(timeout=0.2)  # the handler is abandoned mid-message: no ack is ever sent
        survivor = make_bus()
        recorder = Recorder()
        survivor.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
        eventually(lambda: recorder.count() == 1, timeout=WAIT)
        assert recorder.keys == ["lost-ack"]
        assert survivor.stats().redelivered == 1
    finally:
        release.set()


def test_after_max_deliveries_a_message_is_dead_lettered_and_the_consumer_goes_on(
    make_bus: BusFactory, nats_server: NatsServer
) -> None:
    alerts: list[BusAlert] = []
    bus = make_bus(alerts=alerts, max_deliver=3)
    recorder = Recorder(failures={"poison": 99})
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    bus.publish(REPORTS, report(bus, "poison"))
    bus.publish(REPORTS, report(bus, "fine"))
    eventually(lambda: recorder.count() == 1 and bus.stats().dead_lettered_total == 1, timeout=WAIT)
    assert recorder.keys == ["fine"]
    assert recorder.deliveries.count("poison") == 3
    [letter] = bus.dead_letters()
    assert (letter.subject, letter.reason) == (REPORTS, "MAX_DELIVERIES")
    assert "handler failure on poison" in letter.detail
    assert bus_pb2.BusEnvelope.FromString(letter.data).idempotency_key == "poison"
    assert stream_subjects(nats_server.url, "ESPER_DLQ") == [f"esper.dlq.{REPORTS}"]
    assert AlertKind.DEAD_LETTER in [alert.kind for alert in alerts]


def test_a_last_delivery_never_acked_is_rescued_into_the_dead_letters(make_bus: BusFactory) -> None:
    release = threading.Event()
    deliveries: list[int] = []

    def stuck(opened: OpenedEnvelope) -> None:
        deliveries.append(1)
        release.wait(WAIT)

    try:
        for expected in (1, 2):  # max_deliver=2: both deliveries die without an ack
            crashed = make_bus(max_deliver=2)
            crashed.subscribe(ConsumerSpec("simic", (REPORTS,)), stuck)
            if expected == 1:
                crashed.publish(REPORTS, report(crashed, "orphan"))
            eventually(lambda n=expected: len(deliveries) == n, timeout=WAIT)  # type: ignore[misc]
            crashed.close(timeout=0.2)
        observer = make_bus(max_deliver=2)
        recorder = Recorder()
        observer.subscribe(ConsumerSpec("simic", (REPORTS,)), recorder)
        eventually(lambda: observer.stats().dead_lettered.get("MAX_DELIVERIES") == 1, timeout=WAIT)
        [letter] = observer.dead_letters()
        assert letter.reason == "MAX_DELIVERIES" and "not acknowledged after 2 deliveries" in letter.detail
        assert recorder.keys == []
    finally:
        release.set()


def test_forged_unknown_and_newer_envelopes_are_dead_lettered_and_counted(make_bus: BusFactory) -> None:
    bus = make_bus()
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), recorder)
    forged = seal(sample_field_report(), source="mallory", secret=b"not-the-shared-secret!", key_id="k1")
    newer = seal(sample_field_report(), source="future", secret=SECRET, key_id="k1", schema_version=2)
    unknown = seal(sample_field_report(), source="future")
    unknown.message_type = 42  # type: ignore[assignment]
    unknown.hmac_key_id = "k1"
    unknown.hmac_sha256 = signature(unknown, SECRET)
    for envelope in (forged, newer, unknown, report(bus, "good")):
        bus.publish(REPORTS, envelope)
    eventually(lambda: recorder.count() == 1 and bus.stats().dead_lettered_total == 3, timeout=WAIT)
    assert recorder.keys == ["good"]
    assert bus.stats().dead_lettered == {
        "BAD_SIGNATURE": 1,
        "SCHEMA_VERSION_UNSUPPORTED": 1,
        "UNKNOWN_MESSAGE_TYPE": 1,
    }
    assert sorted(letter.reason for letter in bus.dead_letters()) == [
        "BAD_SIGNATURE",
        "SCHEMA_VERSION_UNSUPPORTED",
        "UNKNOWN_MESSAGE_TYPE",
    ]
    assert bus.stats().handler_failures == 0  # rejected envelopes never reach the handler


def test_an_emergency_published_after_normal_commands_is_handled_first(make_bus: BusFactory) -> None:
    bus = make_bus()
    normal, emergency = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL, lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY
    for key in ("n1", "n2", "n3"):
        bus.publish(NORMAL, command(bus, key, normal))
    bus.publish(EMERGENCY, command(bus, "e1", emergency))
    assert bus.flush(WAIT)
    recorder = Recorder()
    bus.subscribe(ConsumerSpec("kasmina", subjects.command_subjects(RUN)), recorder)
    eventually(lambda: recorder.count() == 4, timeout=WAIT)
    assert recorder.keys == ["e1", "n1", "n2", "n3"]


def test_publishes_during_an_outage_are_buffered_and_arrive_once_in_order_after_restart(
    make_bus: BusFactory, nats_server: NatsServer
) -> None:
    alerts: list[BusAlert] = []
    bus = make_bus(alerts=alerts)
    bus.publish(REPORTS, report(bus, "before"))
    assert bus.flush(WAIT)
    nats_server.stop()
    eventually(lambda: not bus.stats().connected, timeout=WAIT)
    other = subjects.field_report_subject("run-2")
    expected = {REPORTS: ["before"], other: []}
    for index in range(40):
        subject = REPORTS if index % 2 else other
        key = f"outage-{index}"
        bus.publish(subject, report(bus, key))
        expected[subject].append(key)
    assert not bus.flush(0.3)  # nothing can be acknowledged while the server is down
    assert bus.stats().buffered == 40 and bus.stats().pending_publish == 40
    nats_server.start()  # same port, same store
    assert bus.flush(WAIT)
    stats = bus.stats()
    assert (stats.flushed, stats.dropped, stats.pending_publish) == (40, 0, 0)
    assert [a.kind for a in alerts if a.kind in (AlertKind.DISCONNECTED, AlertKind.RECONNECTED)] == [
        AlertKind.DISCONNECTED,
        AlertKind.RECONNECTED,
    ]
    recorder_by_subject = {REPORTS: Recorder(), other: Recorder()}
    for subject, recorder in recorder_by_subject.items():
        durable = "karn-" + subject.rsplit(".", 1)[-1]
        bus.subscribe(ConsumerSpec(durable, (subject,)), recorder)
    eventually(lambda: sum(r.count() for r in recorder_by_subject.values()) == 41, timeout=WAIT)
    for subject, recorder in recorder_by_subject.items():
        assert recorder.keys == expected[subject]
    assert bus.stats().duplicates_dropped == 0
    assert len(stream_subjects(nats_server.url, "ESPER_FIELD_REPORTS")) == 41


def test_a_full_buffer_drops_counts_and_alerts_without_blocking(make_bus: BusFactory, nats_server: NatsServer) -> None:
    alerts: list[BusAlert] = []
    bus = make_bus(alerts=alerts, buffer_max_messages=5)
    nats_server.stop()
    eventually(lambda: not bus.stats().connected, timeout=WAIT)
    envelopes = [report(bus, f"k{index}") for index in range(8)]

    def publish_all() -> None:
        for envelope in envelopes:
            bus.publish(REPORTS, envelope)

    publisher = threading.Thread(target=publish_all)
    publisher.start()
    publisher.join(WAIT)
    assert not publisher.is_alive()
    stats = bus.stats()
    assert (stats.buffered, stats.dropped, stats.pending_publish) == (5, 3, 5)
    assert [a.kind for a in alerts].count(AlertKind.BUFFER_FULL) == 1
    emergency = command(bus, "urgent", lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY)
    bus.publish(EMERGENCY, emergency)  # the emergency lane has room of its own
    assert bus.stats().dropped == 3
    nats_server.start()
    assert bus.flush(WAIT)
    assert bus.stats().flushed == 6


def test_queue_depth_past_the_threshold_turns_conservative_mode_on_then_off(make_bus: BusFactory) -> None:
    alerts: list[BusAlert] = []
    bus = make_bus(alerts=alerts, conservative_queue_depth=3, fetch_batch=1)
    gate = threading.Event()
    recorder = Recorder()

    def slow(opened: OpenedEnvelope) -> None:
        gate.wait(WAIT)
        recorder(opened)

    for index in range(10):
        bus.publish(REPORTS, report(bus, f"k{index}"))
    assert bus.flush(WAIT)
    bus.subscribe(ConsumerSpec("karn", (REPORTS,)), slow)
    eventually(lambda: bus.conservative, timeout=WAIT)
    gate.set()
    eventually(lambda: recorder.count() == 10 and not bus.conservative, timeout=WAIT)
    kinds = [a.kind for a in alerts]
    assert kinds.index(AlertKind.CONSERVATIVE_ON) < kinds.index(AlertKind.CONSERVATIVE_OFF)


def test_stored_messages_carry_the_idempotency_key_and_trace_context_as_headers(
    make_bus: BusFactory, nats_server: NatsServer
) -> None:
    bus = make_bus()
    trace = bus_pb2.TraceContext(
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate="esper=1"
    )
    envelope = bus.seal(sample_field_report(), source="tamiyo", idempotency_key="traced", trace_context=trace)
    bus.publish(REPORTS, envelope)
    assert bus.flush(WAIT)

    async def read_headers() -> dict[str, str]:
        nc = await nats.connect(nats_server.url)
        try:
            stored = await nc.jetstream().get_msg("ESPER_FIELD_REPORTS", 1)
            return dict(stored.headers or {})
        finally:
            await nc.close()

    headers = asyncio.run(read_headers())
    assert headers["Nats-Msg-Id"] == "traced"
    assert (headers["traceparent"], headers["tracestate"]) == (trace.traceparent, trace.tracestate)


def test_misuse_is_refused_with_domain_errors(make_bus: BusFactory) -> None:
    bus = make_bus()
    with pytest.raises(InvalidArgument):
        bus.publish("esper.nowhere.x", report(bus, "a"))
    with pytest.raises(InvalidArgument):
        bus.subscribe(ConsumerSpec("reader", ("esper.dlq.>",)), Recorder())
    jobs = subjects.compile_job_subject("fast")
    bus.subscribe(ConsumerSpec("tezzeret", (jobs,)), Recorder())
    with pytest.raises(FailedPrecondition):  # a work queue takes one consumer per subject
        bus.subscribe(ConsumerSpec("tezzeret-rogue", ("esper.compile_jobs.>",)), Recorder())
    bus.close()
    with pytest.raises(FailedPrecondition):
        bus.publish(REPORTS, report(bus, "late"))


def test_start_fails_with_unavailable_when_nats_is_not_there() -> None:
    config = OonaConfig(url=f"nats://127.0.0.1:{free_port()}", start_timeout_seconds=0.5)
    with pytest.raises(Unavailable):
        JetStreamBus(config).start()
