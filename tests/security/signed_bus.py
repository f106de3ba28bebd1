"""A signed Oona on a real NATS JetStream, and an attacker publishing raw bytes beside it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import nats

from esper.oona.config import OonaConfig
from esper.oona.jetstream import JetStreamBus
from tests.support.nats import NatsServer

SECRET = b"a-mesh-bus-key-of-32-bytes-here!"
WAIT = 20.0

# bus_for(name): a started bus signing with SECRET, its own state under tmp_path/name ("" for the default).
BusFactory = Callable[..., JetStreamBus]


def signed_buses(nats_server: NatsServer, tmp_path: Path) -> Iterator[BusFactory]:
    """The `bus_for` fixture's body: every bus it made is closed afterwards."""
    buses: list[JetStreamBus] = []

    def make(name: str = "") -> JetStreamBus:
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


def inject(url: str, subject: str, data: bytes, msg_id: str) -> None:
    """What an attacker on the network does: publish raw bytes, with a fresh message id."""

    async def publish() -> None:
        connection = await nats.connect(url)
        try:
            await connection.jetstream().publish(subject, data, headers={"Nats-Msg-Id": msg_id})
        finally:
            await connection.close()

    asyncio.run(publish())
