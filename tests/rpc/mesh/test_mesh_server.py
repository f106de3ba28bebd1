"""The server plumbing over real sockets: error statuses, health, reflection, binding."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from esper.errors import Unavailable
from esper.leyline.v1 import karn_pb2, karn_pb2_grpc, tolaria_pb2, tolaria_pb2_grpc, urza_pb2, urza_pb2_grpc
from esper.mesh.config import ServerConfig
from esper.mesh.errors import INTERNAL_MESSAGE
from esper.mesh.server import build_server
from tests.rpc.mesh.fakes import SECRET, ScriptedKarn, karn_registration, streaming_registrations
from tests.support.servers import ServerFactory, ServerThread

KARN = "esper.leyline.v1.KarnService"


@pytest.fixture
def karn() -> ScriptedKarn:
    return ScriptedKarn()


@pytest.fixture
def server(grpc_server: ServerFactory, karn: ScriptedKarn) -> ServerThread:
    return grpc_server([karn_registration(karn), *streaming_registrations()])


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def _get(channel: grpc.Channel, template_id: str) -> karn_pb2.GetTemplateResponse:
    stub = karn_pb2_grpc.KarnServiceStub(channel)
    response: karn_pb2.GetTemplateResponse = stub.GetTemplate(
        karn_pb2.GetTemplateRequest(template_id=template_id), timeout=10
    )
    return response


def _failure(channel: grpc.Channel, template_id: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        _get(channel, template_id)
    return raised.value


def _details(error: grpc.RpcError) -> dict[str, object]:
    status: status_pb2.Status = rpc_status.from_call(error)
    assert status is not None, "the status carries no google.rpc.Status"
    found: dict[str, object] = {}
    for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
        for detail in status.details:
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


def test_domain_error_becomes_its_code_with_error_info(channel: grpc.Channel) -> None:
    error = _failure(channel, "not_found")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    info = _details(error)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "TEMPLATE_NOT_FOUND",
        "esper.leyline.v1",
        {"id": "not_found"},
    )


def test_invalid_argument_names_the_field_in_bad_request(channel: grpc.Channel) -> None:
    error = _failure(channel, "invalid")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = _details(error)
    info, bad_request = details["ErrorInfo"], details["BadRequest"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert info.reason == "INVALID_FIELD"
    assert [(v.field, v.description) for v in bad_request.field_violations] == [("template_id", "is not allowed here")]


def test_retry_after_becomes_retry_info(channel: grpc.Channel) -> None:
    error = _failure(channel, "retry_later_once")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    retry = _details(error)["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 10


def test_unexpected_exception_is_internal_and_leaks_nothing(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="esper.mesh.interceptors"):
        error = _failure(channel, "boom")
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE
    wire = repr(error.trailing_metadata()) + repr(error.initial_metadata())
    assert SECRET not in wire and "Traceback" not in wire
    info = _details(error)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "INTERNAL"
    # The traceback goes to the server's log instead.
    assert SECRET in caplog.text and "RuntimeError" in caplog.text


def test_servicer_abort_passes_through(channel: grpc.Channel) -> None:
    error = _failure(channel, "abort")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "servicer aborted itself"


def test_unimplemented_rpc_stays_unimplemented(channel: grpc.Channel) -> None:
    stub = karn_pb2_grpc.KarnServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListTemplates(karn_pb2.ListTemplatesRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_server_keeps_serving_after_every_kind_of_error(channel: grpc.Channel, karn: ScriptedKarn) -> None:
    for template_id in ("not_found", "invalid", "boom", "abort", "always_unavailable"):
        _failure(channel, template_id)
        assert _get(channel, "fine").template.template_id == "fine"
    assert karn.calls["fine"] == 5


def test_async_generator_stream_fails_after_its_chunks(channel: grpc.Channel) -> None:
    stub = urza_pb2_grpc.UrzaServiceStub(channel)
    received = []
    with pytest.raises(grpc.RpcError) as raised:
        for chunk in stub.DownloadKernel(urza_pb2.DownloadKernelRequest(kernel_id="missing", chunk_size=2)):
            received.append(chunk.offset)
    assert received == [0, 1]
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    info = _details(raised.value)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "KERNEL_NOT_FOUND"


def test_stream_unexpected_error_is_generic_internal(channel: grpc.Channel) -> None:
    stub = urza_pb2_grpc.UrzaServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.DownloadKernel(urza_pb2.DownloadKernelRequest(kernel_id="boom", chunk_size=1)))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == INTERNAL_MESSAGE


def test_context_write_stream_is_mapped_too(channel: grpc.Channel) -> None:
    stub = tolaria_pb2_grpc.TolariaServiceStub(channel)
    ok = list(stub.StreamRunEvents(tolaria_pb2.StreamRunEventsRequest(run_id="r", from_sequence=3)))
    assert len(ok) == 3
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.StreamRunEvents(tolaria_pb2.StreamRunEventsRequest(run_id="missing", from_sequence=1)))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_is_serving_for_server_and_each_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", KARN, "esper.leyline.v1.UrzaService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as raised:
        health.Check(health_pb2.HealthCheckRequest(service="esper.leyline.v1.NoSuchService"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_turns_not_serving_when_the_server_stops(server: ServerThread, channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=KARN), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=server.stop, kwargs={"grace_seconds": 30.0})
    stopper.start()
    try:
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        # The open watch is the last rpc in flight: cancelling it lets the stop finish.
        watch.cancel()
        stopper.join()


def test_reflection_lists_services_health_and_itself(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {service.name for service in responses[0].list_services_response.service}
    assert names == {
        KARN,
        "esper.leyline.v1.UrzaService",
        "esper.leyline.v1.TolariaService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_reflection_describes_a_registered_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=KARN)
    response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=10)))
    assert response.WhichOneof("message_response") == "file_descriptor_response"
    assert response.file_descriptor_response.file_descriptor_proto


def test_a_taken_port_is_refused_not_shared(server: ServerThread, karn: ScriptedKarn) -> None:
    config = ServerConfig(service_name="second", port=server.port)
    with pytest.raises(Unavailable):
        server.run(build_server(config, [karn_registration(karn)]))
