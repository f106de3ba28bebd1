"""NissaService over a real in-process server: it runs, answers health and reflection, and says
UNIMPLEMENTED (with its reason) for what Nissa's own issue builds."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from esper.clients.base import ClientConfig
from esper.clients.nissa import NissaClient
from esper.errors import InvalidArgument, Unimplemented
from esper.leyline.v1 import nissa_pb2
from esper.nissa.service import NissaService
from esper.nissa.servicer import NISSA_SERVICE_NAME, nissa_registration
from tests.fixtures.servers import ServerFactory, ServerThread


@pytest.fixture
def server(grpc_server: ServerFactory) -> ServerThread:
    return grpc_server([nissa_registration(NissaService())], service_name="nissa")


@pytest.fixture
def client(server: ServerThread) -> Iterator[NissaClient]:
    with NissaClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("list_alerts", nissa_pb2.ListAlertsRequest(page_size=10)),
        ("get_run_summary", nissa_pb2.GetRunSummaryRequest(run_id="run-1")),
        ("find_traces", nissa_pb2.FindTracesRequest(command_id="cmd-1")),
    ],
)
def test_every_rpc_answers_unimplemented_with_its_reason(
    client: NissaClient, method: str, request_message: object
) -> None:
    with pytest.raises(Unimplemented) as raised:
        getattr(client, method)(request_message)
    assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED.name
    assert raised.value.reason == "UNIMPLEMENTED"
    assert "Nissa's own issue" in raised.value.message


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("get_run_summary", nissa_pb2.GetRunSummaryRequest(), "run_id"),
        ("find_traces", nissa_pb2.FindTracesRequest(limit=5), "run_id"),
        ("find_traces", nissa_pb2.FindTracesRequest(run_id="run-1", limit=5000), "limit"),
        ("list_alerts", nissa_pb2.ListAlertsRequest(page_size=-1), "page_size"),
    ],
)
def test_a_bad_request_is_invalid_before_it_is_unimplemented(
    client: NissaClient, method: str, request_message: object, field: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        getattr(client, method)(request_message)
    assert [v.field for v in raised.value.violations] == [field]


def test_health_and_reflection_name_the_nissa_service(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=NISSA_SERVICE_NAME), timeout=30
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        [response] = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
        )
        services = {service.name for service in response.list_services_response.service}
        assert NISSA_SERVICE_NAME in services
