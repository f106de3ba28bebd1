"""TamiyoService over a real in-process server, through the TamiyoClient.

Tamiyo's kernel directory is itself remote here: an UrzaClient talking to a small
Urza server that answers QueryKernels from a fixed list.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esper.clients import TamiyoClient, UrzaClient
from esper.clients.base import ClientConfig
from esper.errors import FailedPrecondition, InvalidArgument, NotFound
from esper.leyline.v1 import lifecycle_pb2, tamiyo_pb2
from esper.leyline.v1.services import TAMIYO_SERVICE
from esper.mesh.hosting import host
from esper.tamiyo import TamiyoConfig, TamiyoController
from tests.support.servers import ServerFactory
from tests.support.tamiyo import (
    PLATEAU,
    RUN,
    FakeKernels,
    SeedSimulator,
    commands_by_epoch,
    kernel,
    kernel_list_urza,
    run_epochs,
)

S = lifecycle_pb2
ACCURACIES = [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.62, 0.65]


def _kernels() -> FakeKernels:
    return FakeKernels([kernel("k1", latency_ms=0.3), kernel("k2", latency_ms=0.6)])


@pytest.fixture
def urza(grpc_server: ServerFactory) -> Iterator[UrzaClient]:
    server = grpc_server([kernel_list_urza(_kernels())], service_name="urza")
    with UrzaClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


@pytest.fixture
def client(grpc_server: ServerFactory, urza: UrzaClient) -> Iterator[TamiyoClient]:
    controller = TamiyoController(None, TamiyoConfig(), kernels=urza)
    server = grpc_server([host(TAMIYO_SERVICE.bind(controller))], service_name="tamiyo")
    with TamiyoClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


def _sim() -> SeedSimulator:
    sim = SeedSimulator()
    sim.seeds["net.3"].dead = 0.4
    return sim


def test_a_remote_run_decides_exactly_as_the_in_process_controller(client: TamiyoClient) -> None:
    remote = run_epochs(client, _sim(), ACCURACIES)
    local = run_epochs(TamiyoController(None, TamiyoConfig(), kernels=_kernels()), _sim(), ACCURACIES)
    assert [r.SerializeToString(deterministic=True) for r in remote] == [
        r.SerializeToString(deterministic=True) for r in local
    ]
    assert commands_by_epoch(remote)[3] == ["net.3:REQUEST_GERMINATION", "net.3:ADVANCE:LOADING"]
    assert remote[3].commands[0].kernel_id == "k1"
    [report] = [r for response in remote for r in response.field_reports]
    assert report.outcome == S.ADAPTATION_OUTCOME_FOSSILIZED

    status = client.get_status(tamiyo_pb2.GetStatusRequest(run_id=RUN))
    assert (status.policy_id, status.current_epoch, status.tracked_runs) == ("heuristic-v1", 10, 1)


def test_state_exports_and_restores_over_the_wire(client: TamiyoClient) -> None:
    run_epochs(client, _sim(), ACCURACIES[:6])
    state = client.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)).state
    assert [a.seed_id for a in state.active_adaptations] == ["net.3"]
    state.run_id = "run-copy"
    restored = client.restore_controller_state(tamiyo_pb2.RestoreControllerStateRequest(state=state))
    assert restored.run_id == "run-copy"
    copy = client.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id="run-copy")).state
    assert copy == state


def test_errors_arrive_as_domain_errors_with_their_reason_and_field(client: TamiyoClient) -> None:
    with pytest.raises(NotFound) as not_found:
        client.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id="simic-7"))
    assert not_found.value.reason == "POLICY_NOT_FOUND"

    with pytest.raises(NotFound) as no_run:
        client.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id="nope"))
    assert no_run.value.reason == "RUN_NOT_FOUND"

    request = _sim().request(0, 0.5)
    request.packet.layout_hash ^= 1
    with pytest.raises(InvalidArgument) as invalid:
        client.step(request)
    assert [v.field for v in invalid.value.violations] == ["packet.layout_hash"]

    request = _sim().request(0, 0.5)
    request.packet.schema_version = 2
    with pytest.raises(FailedPrecondition) as unsupported:
        client.step(request)
    assert unsupported.value.reason == "SCHEMA_VERSION_UNSUPPORTED"

    assert client.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id="heuristic-v1")).policy_id == "heuristic-v1"
