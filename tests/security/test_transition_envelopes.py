"""Tamiyo's decision transitions reach Simic's replay store over the same signed Oona path as field
reports: on a real NATS JetStream, a transition Tamiyo sealed is stored once, while one published by
anyone without the bus key (unsigned, or signed with another key) is dead-lettered and never stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.leyline.v1 import simic_pb2
from esper.oona import subjects
from esper.oona.envelope import seal, signature
from esper.simic.config import SimicConfig
from esper.simic.intake import TransitionIntake
from esper.simic.service import SimicService
from esper.tamiyo.bus import TransitionPublisher
from tests.security.signed_bus import WAIT, BusFactory, inject
from tests.support.nats import NatsServer
from tests.support.transitions import heuristic_transitions
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


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
        inject(nats_server.url, subject, unsigned.SerializeToString(), "forged-1")
        wrong = seal(other_key, source="tamiyo", idempotency_key=other_key.transition_id)
        wrong.subject = subject
        wrong.hmac_key_id = "mesh"
        wrong.hmac_sha256 = signature(wrong, b"not-the-mesh-bus-key-of-32-bytes")
        inject(nats_server.url, subject, wrong.SerializeToString(), "forged-2")
        publisher = bus_for("tamiyo")
        TransitionPublisher(publisher).record(genuine)
        assert publisher.flush(WAIT)
        eventually(
            lambda: intake.counts().stored == 1 and consumer.stats().dead_lettered.get("BAD_SIGNATURE") == 2,
            timeout=WAIT,
        )
        assert intake.counts().refused == 0
        # The store holds the genuine transition (a duplicate now) and neither forged one (new now).
        again = simic.record_transitions(simic_pb2.RecordTransitionsRequest(transitions=[genuine, forged, other_key]))
        assert (again.duplicate_count, again.accepted_count) == (1, 2)
    finally:
        simic.close()
