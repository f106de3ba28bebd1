"""Tamiyo's decision transitions reach Simic's replay store over the same signed Oona path as field
reports: on a real NATS JetStream, a transition Tamiyo sealed is stored once, while one published by
anyone without the bus key (unsigned, or signed with another key) is dead-lettered and never stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from esper.leyline.v1 import simic_pb2
from esper.oona import subjects
from esper.oona.config import OonaConfig
from esper.oona.envelope import seal, signature
from esper.oona.jetstream import JetStreamBus
from esper.simic.config import SimicConfig
from esper.simic.intake import TransitionIntake
from esper.simic.service import SimicService
from esper.tamiyo.bus import TransitionPublisher
from tests.support.nats import NatsServer
from tests.support.transitions import heuristic_transitions

pytestmark = pytest.mark.integration

SECRET = b"a-mesh-bus-key-of-32-bytes-here!"
WAIT = 20.0

BusFactory = Callable[[str], JetStreamBus]


@pytest.fixture
def bus_for(nats_server: NatsServer, tmp_path: Path) -> Iterator[BusFactory]:
    buses: list[JetStreamBus] = []

    def make(name: str) -> JetStreamBus:
        config = OonaConfig(
            url=nats_server.url,
            hmac_secret=SECRET,
            hmac_key_id="mesh",
            state_dir=str(tmp_path / name / "oona"),
            fetch_wait_seconds=0.2,
            ack_wait_seconds=2.0,
        )
        buses.append(JetStreamBus(config).start())
        return buses[-1]

    yield make
    for bus in buses:
        bus.close(timeout=1.0)


def _inject(url: str, subject: str, data: bytes, msg_id: str) -> None:
    """Raw bytes on the transitions subject, as anyone on the network could publish them."""

    async def publish() -> None:
        connection = await nats.connect(url)
        try:
            await connection.jetstream().publish(subject, data, headers={"Nats-Msg-Id": msg_id})
        finally:
            await connection.close()

    asyncio.run(publish())


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_only_transitions_sealed_with_the_bus_key_reach_the_replay_store(
    bus_for: BusFactory, nats_server: NatsServer, tmp_path: Path
) -> None:
    genuine, forged, other_key = heuristic_transitions(runs=1)[:3]
    simic = SimicService.open(SimicConfig(data_dir=str(tmp_path / "simic")))
    try:
        consumer = bus_for("simic")
        intake = TransitionIntake(simic)
        intake.subscribe(consumer)
        subject = subjects.transition_subject(genuine.run_id)
        unsigned = seal(forged, source="tamiyo", idempotency_key=forged.transition_id)
        unsigned.subject = subject
        _inject(nats_server.url, subject, unsigned.SerializeToString(), "forged-1")
        wrong = seal(other_key, source="tamiyo", idempotency_key=other_key.transition_id)
        wrong.subject = subject
        wrong.hmac_key_id = "mesh"
        wrong.hmac_sha256 = signature(wrong, b"not-the-mesh-bus-key-of-32-bytes")
        _inject(nats_server.url, subject, wrong.SerializeToString(), "forged-2")
        publisher = bus_for("tamiyo")
        TransitionPublisher(publisher).record(genuine)
        assert publisher.flush(WAIT)
        _until(lambda: intake.counts().stored == 1 and consumer.stats().dead_lettered.get("BAD_SIGNATURE") == 2)
        assert intake.counts().refused == 0
        # The store holds the genuine transition (a duplicate now) and neither forged one (new now).
        again = simic.record_transitions(simic_pb2.RecordTransitionsRequest(transitions=[genuine, forged, other_key]))
        assert (again.duplicate_count, again.accepted_count) == (1, 2)
    finally:
        simic.close()
