"""Oona on a real NATS JetStream: a captured signed envelope replayed (after the consumer restarts), moved
to another subject, or replayed long after it was published is dead-lettered and counted; a fresh one
is handled. The attacker publishes raw bytes with core NATS, as anyone on the network could."""

from __future__ import annotations

import threading

import pytest

from esper.leyline.v1 import bus_pb2
from esper.oona import subjects
from esper.oona.api import ConsumerSpec
from esper.oona.envelope import OpenedEnvelope, signature
from esper.oona.jetstream import JetStreamBus
from esper.state.samples import sample_field_report
from tests.security.signed_bus import SECRET, WAIT, BusFactory, inject
from tests.support.nats import NatsServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REPORTS = subjects.field_report_subject("run-1")
OTHER_REPORTS = subjects.field_report_subject("run-2")


class Handled:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, opened: OpenedEnvelope) -> None:
        with self.changed:
            self.keys.append(opened.idempotency_key)
            self.changed.notify_all()

    def wait_for(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.keys) >= count, WAIT)


def _dead_letter_reasons(bus: JetStreamBus, count: int) -> list[str]:
    import time

    deadline = time.monotonic() + WAIT
    while True:
        reasons = sorted(letter.reason for letter in bus.dead_letters())
        if len(reasons) >= count or time.monotonic() > deadline:
            return reasons
        time.sleep(0.1)


def test_replayed_moved_and_stale_envelopes_are_dead_lettered(bus_for: BusFactory, nats_server: NatsServer) -> None:
    make = bus_for
    publisher = make()
    consumer = make()
    handled = Handled()
    subscription = consumer.subscribe(ConsumerSpec("simic", ("esper.field_reports.>",)), handled)
    envelope = publisher.seal(sample_field_report(), source="tolaria", idempotency_key="report-1")
    publisher.publish(REPORTS, envelope)
    assert publisher.flush(WAIT) and handled.wait_for(1)
    captured = envelope.SerializeToString()
    # Recorded and acked, not merely handed to the handler.
    eventually(lambda: consumer.stats().handled == 1, timeout=WAIT)
    # The consumer restarts: its record of handled messages is on disk.
    subscription.stop()
    consumer.close(timeout=1.0)
    restarted = make()
    again = Handled()
    restarted.subscribe(ConsumerSpec("simic", ("esper.field_reports.>",)), again)
    inject(nats_server.url, REPORTS, captured, "replay-1")
    inject(nats_server.url, OTHER_REPORTS, captured, "replay-2")
    stale = bus_pb2.BusEnvelope.FromString(captured)
    stale.idempotency_key = "report-old"
    stale.publish_time.FromSeconds(stale.publish_time.seconds - 3600)
    stale.hmac_sha256 = signature(stale, SECRET)  # even correctly signed (a leaked old message)
    inject(nats_server.url, REPORTS, stale.SerializeToString(), "replay-3")
    fresh = publisher.seal(sample_field_report(), source="tolaria", idempotency_key="report-2")
    publisher.publish(REPORTS, fresh)
    assert publisher.flush(WAIT) and again.wait_for(1)
    assert _dead_letter_reasons(restarted, 3) == ["BAD_SIGNATURE", "REPLAYED", "STALE"]
    assert again.keys == ["report-2"]
    counted = restarted.stats().dead_lettered
    assert counted == {"BAD_SIGNATURE": 1, "REPLAYED": 1, "STALE": 1}
