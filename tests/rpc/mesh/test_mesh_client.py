"""The client base against a real server: retries, deadlines, error decoding, streams."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from esper.clients import KarnClient, UrzaClient
from esper.clients.base import ClientConfig
from esper.errors import (
    DeadlineExceeded,
    EsperError,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from esper.leyline.v1 import karn_pb2, urza_pb2
from esper.mesh.errors import INTERNAL_MESSAGE
from tests.rpc.mesh.fakes import ScriptedKarn, karn_registration, streaming_registrations
from tests.support.servers import ServerFactory, ServerThread


@pytest.fixture
def karn() -> ScriptedKarn:
    return ScriptedKarn()


@pytest.fixture
def server(grpc_server: ServerFactory, karn: ScriptedKarn) -> ServerThread:
    return grpc_server([karn_registration(karn), *streaming_registrations()])


@pytest.fixture
def client(server: ServerThread) -> Iterator[KarnClient]:
    with KarnClient(ClientConfig(address=server.address, deadline_seconds=10.0, max_attempts=4)) as client:
        yield client


def _get(client: KarnClient, template_id: str, timeout: float | None = None) -> karn_pb2.GetTemplateResponse:
    return client.get_template(karn_pb2.GetTemplateRequest(template_id=template_id), timeout=timeout)


def test_unavailable_is_retried_until_it_succeeds(client: KarnClient, karn: ScriptedKarn) -> None:
    response = _get(client, "unavailable_twice")
    assert response.template.name == "call 3"
    assert karn.calls["unavailable_twice"] == 3


def test_unavailable_after_the_last_attempt_is_raised(client: KarnClient, karn: ScriptedKarn) -> None:
    with pytest.raises(Unavailable) as raised:
        _get(client, "always_unavailable")
    assert raised.value.message == "down for good"
    assert karn.calls["always_unavailable"] == 4


def test_invalid_argument_is_not_retried_and_keeps_its_field(client: KarnClient, karn: ScriptedKarn) -> None:
    with pytest.raises(InvalidArgument) as raised:
        _get(client, "invalid")
    assert karn.calls["invalid"] == 1
    assert raised.value.reason == "INVALID_FIELD"
    assert raised.value.violations == [FieldViolation("template_id", "is not allowed here")]


def test_not_found_is_decoded_with_reason_and_metadata(client: KarnClient, karn: ScriptedKarn) -> None:
    with pytest.raises(NotFound) as raised:
        _get(client, "not_found")
    assert karn.calls["not_found"] == 1
    assert (raised.value.reason, raised.value.metadata) == ("TEMPLATE_NOT_FOUND", {"id": "not_found"})


def test_retry_info_makes_any_code_retryable(client: KarnClient, karn: ScriptedKarn) -> None:
    assert _get(client, "retry_later_once").template.name == "call 2"
    assert karn.calls["retry_later_once"] == 2


def test_internal_error_arrives_generic(client: KarnClient) -> None:
    with pytest.raises(EsperError) as raised:
        _get(client, "boom")
    assert (raised.value.code, raised.value.reason, raised.value.message) == (
        "INTERNAL",
        "INTERNAL",
        INTERNAL_MESSAGE,
    )


def test_every_call_has_a_deadline(client: KarnClient, karn: ScriptedKarn) -> None:
    with pytest.raises(DeadlineExceeded):
        _get(client, "slow", timeout=0.3)
    assert karn.calls["slow"] == 1
    # The default deadline applies when the caller gives none.
    short_config = ClientConfig(address=client.config.address, deadline_seconds=0.3)
    with KarnClient(short_config) as short, pytest.raises(DeadlineExceeded):
        _get(short, "slow")
    assert karn.calls["slow"] == 2


def test_no_server_means_unavailable_after_bounded_backoff() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delays: list[float] = []
    config = ClientConfig(address=f"127.0.0.1:{port}", max_attempts=3, max_backoff_seconds=0.2)
    with (
        KarnClient(config, sleep=delays.append) as client,
        pytest.raises(Unavailable),
    ):
        client.call("GetTemplate", karn_pb2.GetTemplateRequest(template_id="x"))
    assert len(delays) == 2
    assert all(0.0 <= delay <= 0.2 for delay in delays)


def test_stream_yields_then_raises_the_decoded_error(server: ServerThread) -> None:
    with UrzaClient(ClientConfig(address=server.address)) as client:
        request = urza_pb2.DownloadKernelRequest(kernel_id="k", chunk_size=3)
        assert [chunk.offset for chunk in client.stream("DownloadKernel", request)] == [0, 1, 2]
        received = []
        with pytest.raises(NotFound) as raised:
            missing = urza_pb2.DownloadKernelRequest(kernel_id="missing", chunk_size=2)
            received.extend(chunk.offset for chunk in client.stream("DownloadKernel", missing))
        assert received == [0, 1]
        assert raised.value.reason == "KERNEL_NOT_FOUND"


def test_unknown_method_is_a_programming_error(client: KarnClient) -> None:
    with pytest.raises(ValueError, match="NoSuchRpc"):
        client.call("NoSuchRpc", karn_pb2.GetTemplateRequest())
