"""`esper serve tamiyo --nats URL` on a real nats-server: each step's commands and field reports are
published on their subjects exactly once (every step retried), decisions are those of a controller
without a bus, and seed telemetry from the bus shows in GetStatus."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import nats
import pytest

from esper.cli.main import build_parser
from esper.clients import TamiyoClient
from esper.clients.base import ClientConfig
from esper.errors import NotFound
from esper.leyline.v1 import bus_pb2, control_pb2, tamiyo_pb2, telemetry_pb2
from esper.oona.config import OonaConfig
from esper.oona.jetstream import JetStreamBus
from esper.oona.subjects import command_subject, field_report_subject, telemetry_subject
from esper.tamiyo import TamiyoConfig, TamiyoController
from tests.support.nats import NatsServer
from tests.support.served import RunningServed
from tests.support.servers import ServerFactory
from tests.support.tamiyo import PLATEAU, RUN, FakeKernels, SeedSimulator, kernel, kernel_list_urza, run_epochs
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ACCURACIES = [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.62, 0.65]


def _kernels() -> FakeKernels:
    return FakeKernels([kernel("k1", latency_ms=0.3), kernel("k2", latency_ms=0.6)])


def _sim() -> SeedSimulator:
    sim = SeedSimulator()
    sim.seeds["net.3"].dead = 0.4
    return sim


@dataclass(frozen=True)
class Stored:
    subject: str
    msg_id: str
    envelope: bus_pb2.BusEnvelope


def read_stream(url: str, stream: str) -> list[Stored]:
    """Every message a JetStream stream holds, in order, read directly (no consumer, no dedup)."""

    async def read() -> list[Stored]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            state = (await js.stream_info(stream)).state
            stored = []
            for sequence in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                raw = await js.get_msg(stream, sequence)
                envelope = bus_pb2.BusEnvelope.FromString(raw.data or b"")
                stored.append(Stored(raw.subject or "", (raw.headers or {}).get("Nats-Msg-Id", ""), envelope))
            return stored
        finally:
            await nc.close()

    return asyncio.run(read())


@pytest.fixture
def urza_address(grpc_server: ServerFactory) -> str:
    return grpc_server([kernel_list_urza(_kernels())], service_name="urza").address


@pytest.fixture
def tamiyo(nats_server: NatsServer, urza_address: str) -> Iterator[RunningServed]:
    args = build_parser().parse_args(["serve", "tamiyo", "--urza", urza_address, "--nats", nats_server.url])
    running = RunningServed(args.serve_target.build(args), "tamiyo")
    yield running
    running.stop()


def _observe_telemetry(client: TamiyoClient, nats_server: NatsServer) -> tamiyo_pb2.GetStatusResponse:
    with JetStreamBus(OonaConfig(url=nats_server.url, client_name="kasmina")) as kasmina:
        for epoch in (3, 4):
            for seed_id in ("blocks.0", "blocks.1"):
                telemetry = telemetry_pb2.SeedTelemetry(run_id="run-observed", seed_id=seed_id, epoch=epoch)
                kasmina.publish(telemetry_subject("run-observed", seed_id), kasmina.seal(telemetry, source="kasmina"))
        assert kasmina.flush(30.0)

    def status() -> tamiyo_pb2.GetStatusResponse | None:
        try:
            return client.get_status(tamiyo_pb2.GetStatusRequest(run_id="run-observed"))
        except NotFound:
            return None  # not observed yet

    observed = eventually(status, until=lambda found: found is not None and found.current_epoch == 4, timeout=30)
    assert observed is not None
    return observed


def test_steps_publish_commands_and_field_reports_exactly_once(nats_server: NatsServer, tamiyo: RunningServed) -> None:
    sim = _sim()
    responses = []
    with TamiyoClient(ClientConfig(address=tamiyo.address, deadline_seconds=30.0)) as client:
        for epoch, accuracy in enumerate(ACCURACIES):
            sim.train_epoch()
            request = sim.request(epoch, accuracy)
            response = client.step(request)
            # Every step is sent twice, as a client retrying after a lost answer would.
            assert client.step(request) == response
            sim.apply(response.commands)
            responses.append(response)
        observed = _observe_telemetry(client, nats_server)
        overall = client.get_status(tamiyo_pb2.GetStatusRequest())
    tamiyo.stop()  # flushes what is still buffered

    local = run_epochs(TamiyoController(None, TamiyoConfig(), kernels=_kernels()), _sim(), ACCURACIES)
    assert [r.SerializeToString(deterministic=True) for r in responses] == [
        r.SerializeToString(deterministic=True) for r in local
    ]
    assert (observed.current_epoch, overall.tracked_runs) == (4, 2)

    commands = [c for response in responses for c in response.commands]
    reports = [r for response in responses for r in response.field_reports]
    assert len(commands) >= 5 and len(reports) == 1

    published_commands = read_stream(nats_server.url, "ESPER_CONTROL")
    assert [m.msg_id for m in published_commands] == [c.command_id for c in commands]
    for message, command in zip(published_commands, commands, strict=True):
        assert message.subject == command_subject(RUN, command.priority)
        assert message.envelope.source == "tamiyo"
        assert control_pb2.AdaptationCommand.FromString(message.envelope.payload) == command

    [published_report] = read_stream(nats_server.url, "ESPER_FIELD_REPORTS")
    assert published_report.subject == field_report_subject(RUN)
    assert published_report.msg_id == reports[0].report_id
    assert control_pb2.FieldReport.FromString(published_report.envelope.payload) == reports[0]
