"""KasminaService over a real in-process gRPC server, through KasminaClient."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import torch

from esper.clients import KasminaClient
from esper.clients.base import ClientConfig
from esper.errors import FailedPrecondition, InvalidArgument, NotFound
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.morphable import MorphableModel
from esper.kasmina.operator import KasminaOperator
from esper.leyline.v1 import kasmina_pb2, lifecycle_pb2
from esper.leyline.v1.services import KASMINA_SERVICE
from esper.mesh.hosting import host
from tests.support.kasmina import RUN_ID, command, mlp_setup
from tests.support.servers import ServerFactory
from tests.support.waiting import eventually

CMD = lifecycle_pb2.CommandType


@pytest.fixture
def setup() -> tuple[MorphableModel, KasminaOperator]:
    model, operator, _, _ = mlp_setup(KasminaConfig(target_module_types=("ReLU",)))
    return model, operator


@pytest.fixture
def client(grpc_server: ServerFactory, setup: tuple[MorphableModel, KasminaOperator]) -> Iterator[KasminaClient]:
    server = grpc_server([host(KASMINA_SERVICE.bind(setup[1]))], service_name="kasmina")
    with KasminaClient(ClientConfig(address=server.address, deadline_seconds=10.0)) as client:
        yield client


def test_commands_round_trip(client: KasminaClient, setup: tuple[MorphableModel, KasminaOperator]) -> None:
    model, _ = setup
    germination = command(CMD.COMMAND_TYPE_REQUEST_GERMINATION, "1", command_id="g", kernel_id="k-mlp")
    assert client.apply_command(germination).stage == lc.GERMINATED
    loaded = client.apply_command(command(CMD.COMMAND_TYPE_ADVANCE, "1", command_id="l", target_stage=lc.LOADING))
    assert loaded.accepted and loaded.stage == lc.TRAINING
    assert model.seed("1").stage == lc.TRAINING
    assert client.apply_command(germination).reason.startswith("already applied")


def test_errors_keep_their_status_reason_and_field(client: KasminaClient) -> None:
    with pytest.raises(InvalidArgument) as invalid:
        client.apply_command(command(CMD.COMMAND_TYPE_REQUEST_GERMINATION, "1", command_id="g"))
    assert [v.field for v in invalid.value.violations] == ["command.kernel_id"]
    with pytest.raises(NotFound) as missing:
        client.apply_command(command(CMD.COMMAND_TYPE_CULL, "nope", command_id="c"))
    assert missing.value.reason == "SEED_NOT_FOUND"
    with pytest.raises(FailedPrecondition) as illegal:
        client.apply_command(command(CMD.COMMAND_TYPE_FOSSILIZE, "1", command_id="f"))
    assert illegal.value.reason == "ILLEGAL_TRANSITION"
    with pytest.raises(NotFound) as run:
        client.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id="other"))
    assert run.value.reason == "RUN_NOT_FOUND"


def test_list_seed_states_pages(client: KasminaClient) -> None:
    first = client.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID, page_size=1))
    second = client.list_seed_states(
        kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID, page_size=1, page_token=first.next_page_token)
    )
    assert [s.descriptor.seed_id for s in [*first.seeds, *second.seeds]] == ["1", "3"]
    assert not second.next_page_token
    assert all(s.stage == lc.DORMANT for s in [*first.seeds, *second.seeds])


def test_telemetry_streams_as_epochs_end(client: KasminaClient, setup: tuple[MorphableModel, KasminaOperator]) -> None:
    model, operator = setup
    received: list[kasmina_pb2.StreamTelemetryResponse] = []
    request = kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID, seed_ids=["3"])
    reader = threading.Thread(target=lambda: received.extend(client.stream_telemetry(request, timeout=30)))
    reader.start()
    eventually(lambda: operator.telemetry_subscribers == 1, what="the subscription")
    for epoch in range(3):
        with model.collecting_telemetry(), torch.no_grad():
            model(torch.randn(16, 8))
        operator.on_epoch_end(epoch)
    operator.close()
    reader.join(timeout=15)
    assert not reader.is_alive()
    assert [(r.telemetry.seed_id, r.telemetry.epoch) for r in received] == [("3", 0), ("3", 1), ("3", 2)]
    assert all(r.telemetry.chunk_variance > 0 for r in received)


def test_a_client_leaving_ends_its_subscription(
    client: KasminaClient, setup: tuple[MorphableModel, KasminaOperator]
) -> None:
    _, operator = setup
    stream = client.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID), timeout=30)
    first: list[kasmina_pb2.StreamTelemetryResponse] = []

    def read_one() -> None:
        first.append(next(stream))

    reader = threading.Thread(target=read_one)
    reader.start()
    eventually(lambda: operator.telemetry_subscribers == 1, what="the subscription")
    operator.on_epoch_end(0)
    reader.join(timeout=15)
    assert first and first[0].telemetry.epoch == 0
    stream.close()  # the client leaves mid-stream
    eventually(lambda: operator.telemetry_subscribers == 0, what="the server to drop the subscription")


def test_stream_of_an_unknown_run_is_not_found(client: KasminaClient) -> None:
    with pytest.raises(NotFound) as caught:
        list(client.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id="other"), timeout=10))
    assert caught.value.reason == "RUN_NOT_FOUND"
    with pytest.raises(InvalidArgument) as invalid:
        list(client.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID, seed_ids=[""]), timeout=10))
    assert [v.field for v in invalid.value.violations] == ["seed_ids[0]"]
