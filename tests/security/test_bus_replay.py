"""Oona on a real NATS JetStream: a captured signed envelope replayed (after the consumer restarts), moved
to another subject, or replayed long after it was published is dead-lettered and counted; a fresh one
is handled. The attacker publishes raw bytes with core NATS, as anyone on the network could."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from esper.leyline.v1 import bus_pb2
from esper.oona import subjects
from esper.oona.api import ConsumerSpec
from esper.oona.config import OonaConfig
from esper.oona.envelope import OpenedEnvelope, signature
from esper.oona.jetstream import JetStreamBus
from esper.state.samples import sample_field_report
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

SECRET = b"a-mesh-bus-key-of-32-bytes-here!"
REPORTS = subjects.field_report_subject("run-1")
OTHER_REPORTS = subjects.field_report_subject("run-2")
WAIT = 20.0


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


BusFactory = Callable[[], JetStreamBus]


@pytest.fixture
def bus_for(nats_server: NatsServer, tmp_path: Path) -> Iterator[BusFactory]:
    buses: list[JetStreamBus] = []

    def make() -> JetStreamBus:
        config = OonaConfig(
            url=nats_server.url,
            hmac_secret=SECRET,
            hmac_key_id="mesh",
            state_dir=str(tmp_path / "oona"),
            fetch_wait_seconds=0.2,
            ack_wait_seconds=2.0,
        )
        buses.append(JetStreamBus(config).start())
        return buses[-1]

    yield make
    for bus in buses:
        bus.close(timeout=1.0)


def _inject(url: str, subject: str, data: bytes, msg_id: str) -> None:
    """What an attacker on the network does: publish raw bytes, with a fresh message id."""

    async def publish() -> None:
        connection = await nats.connect(url)
        try:
            await connection.jetstream().publish(subject, data, headers={"Nats-Msg-Id": msg_id})
        finally:
            await connection.close()

    asyncio.run(publish())


def _until(check: Callable[[], bool]) -> None:
    import time

    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


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
    _until(lambda: consumer.stats().handled == 1)  # recorded and acked, not merely handed to the handler
    # The consumer restarts: its record of handled messages is on disk.
    subscription.stop()
    consumer.close(timeout=1.0)
    restarted = make()
    again = Handled()
    restarted.subscribe(ConsumerSpec("simic", ("esper.field_reports.>",)), again)
    _inject(nats_server.url, REPORTS, captured, "replay-1")
    _inject(nats_server.url, OTHER_REPORTS, captured, "replay-2")
    stale = bus_pb2.BusEnvelope.FromString(captured)
    stale.idempotency_key = "report-old"
    stale.publish_time.FromSeconds(stale.publish_time.seconds - 3600)
    stale.hmac_sha256 = signature(stale, SECRET)  # even correctly signed (a leaked old message)
    _inject(nats_server.url, REPORTS, stale.SerializeToString(), "replay-3")
    fresh = publisher.seal(sample_field_report(), source="tolaria", idempotency_key="report-2")
    publisher.publish(REPORTS, fresh)
    assert publisher.flush(WAIT) and again.wait_for(1)
    assert _dead_letter_reasons(restarted, 3) == ["BAD_SIGNATURE", "REPLAYED", "STALE"]
    assert again.keys == ["report-2"]
    counted = restarted.stats().dead_lettered
    assert counted == {"BAD_SIGNATURE": 1, "REPLAYED": 1, "STALE": 1}
