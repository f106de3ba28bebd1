"""esper_rpc_server_duration_seconds on a real server: every kind of rpc, labelled with the code the client got."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from esper.leyline.v1 import karn_pb2, karn_pb2_grpc, tolaria_pb2, tolaria_pb2_grpc, urza_pb2, urza_pb2_grpc
from esper.observability.metrics import REGISTRY
from tests.rpc.mesh.fakes import ScriptedKarn, karn_registration, streaming_registrations
from tests.support.servers import ServerFactory, ServerThread
from tests.support.waiting import eventually

KARN = "esper.leyline.v1.KarnService"
URZA = "esper.leyline.v1.UrzaService"
TOLARIA = "esper.leyline.v1.TolariaService"


@pytest.fixture
def server(grpc_server: ServerFactory) -> ServerThread:
    return grpc_server([karn_registration(ScriptedKarn()), *streaming_registrations()])


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def _count(service: str, method: str, code: str) -> float:
    labels = {"grpc_service": service, "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value("esper_rpc_server_duration_seconds_count", labels) or 0.0


def _eventually_count(service: str, method: str, code: str, expected: float) -> float:
    """The count once it reaches `expected`: an rpc's status reaches the client while the server
    is still unwinding the handler, where the observation is made."""
    return eventually(lambda: _count(service, method, code), until=lambda found: found >= expected)


def _get_template(channel: grpc.Channel, template_id: str) -> grpc.StatusCode:
    try:
        karn_pb2_grpc.KarnServiceStub(channel).GetTemplate(
            karn_pb2.GetTemplateRequest(template_id=template_id), timeout=10
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("template_id", "code"),
    [
        ("fine", "OK"),
        ("not_found", "NOT_FOUND"),  # a domain error, mapped by ErrorInterceptor inside
        ("invalid", "INVALID_ARGUMENT"),
        ("boom", "INTERNAL"),  # an unexpected exception
        ("abort", "PERMISSION_DENIED"),  # the servicer aborted itself
    ],
)
def test_a_unary_rpc_is_recorded_with_the_code_the_client_got(
    channel: grpc.Channel, template_id: str, code: str
) -> None:
    before = _count(KARN, "GetTemplate", code)
    assert _get_template(channel, template_id).name == code
    assert _eventually_count(KARN, "GetTemplate", code, before + 1) == before + 1


@pytest.mark.parametrize(("kernel_id", "code"), [("k1", "OK"), ("missing", "NOT_FOUND"), ("boom", "INTERNAL")])
def test_a_yielding_stream_is_recorded_once_it_ends(channel: grpc.Channel, kernel_id: str, code: str) -> None:
    before = _count(URZA, "DownloadKernel", code)
    stub = urza_pb2_grpc.UrzaServiceStub(channel)
    responses = stub.DownloadKernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel_id, chunk_size=3), timeout=10)
    received = 0
    try:
        for _ in responses:
            received += 1
    except grpc.RpcError as error:
        assert error.code().name == code
    assert received == 3
    assert _eventually_count(URZA, "DownloadKernel", code, before + 1) == before + 1


@pytest.mark.parametrize(("run_id", "code"), [("r1", "OK"), ("missing", "NOT_FOUND")])
def test_a_writing_stream_still_streams_and_is_recorded(channel: grpc.Channel, run_id: str, code: str) -> None:
    before = _count(TOLARIA, "StreamRunEvents", code)
    stub = tolaria_pb2_grpc.TolariaServiceStub(channel)
    request = tolaria_pb2.StreamRunEventsRequest(run_id=run_id, from_sequence=2)
    received = 0
    try:
        for _ in stub.StreamRunEvents(request, timeout=10):
            received += 1
    except grpc.RpcError as error:
        assert error.code().name == code
    assert received == 2
    assert _eventually_count(TOLARIA, "StreamRunEvents", code, before + 1) == before + 1


def test_health_checks_are_not_recorded(channel: grpc.Channel) -> None:
    assert _get_template(channel, "fine") == grpc.StatusCode.OK
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    recorded = {
        sample.labels.get("grpc_service")
        for family in REGISTRY.collect()
        if family.name == "esper_rpc_server_duration_seconds"
        for sample in family.samples
    }
    assert KARN in recorded
    assert not any(service and service.startswith("grpc.") for service in recorded)
