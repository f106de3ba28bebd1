"""Who reaches a server at all: plaintext, certificate-less and foreign-CA clients are refused in the
handshake and never reach a handler; an identity of the mesh that lacks the role gets PERMISSION_DENIED
naming it; health and reflection answer any identity of the mesh."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from esper.clients import KarnClient
from esper.errors import PermissionDenied, Unavailable
from esper.karn.config import KarnConfig
from esper.karn.service import KarnService
from esper.leyline.v1 import control_pb2, karn_pb2
from esper.leyline.v1.services import KARN_SERVICE
from esper.mesh.hosting import host
from esper.mesh.tls import channel_credentials
from tests.security.conftest import Pki, TlsServerFactory


class CountingKarn:
    """Karn's domain, counting every call that reaches it."""

    def __init__(self) -> None:
        self._karn = KarnService.default(KarnConfig())
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._karn, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return method(*args, **kwargs)

        return counted


@pytest.fixture
def karn(tls_server: TlsServerFactory) -> tuple[str, CountingKarn]:
    domain = CountingKarn()
    server = tls_server([host(KARN_SERVICE.bind(domain))], "karn")  # type: ignore[arg-type]
    return server.address, domain


def _list(config: Any) -> karn_pb2.ListTemplatesResponse:
    with KarnClient(config) as client:
        return client.list_templates(karn_pb2.ListTemplatesRequest(page_size=1))


def test_the_operator_is_served(karn: tuple[str, CountingKarn], pki: Pki) -> None:
    address, domain = karn
    assert len(_list(pki.client(address, "operator")).templates) == 1
    assert domain.calls >= 1


@pytest.mark.parametrize("who", ["plaintext", "no certificate", "another CA"])
def test_unauthenticated_clients_never_reach_a_handler(
    karn: tuple[str, CountingKarn], pki: Pki, other_pki: Pki, who: str
) -> None:
    address, domain = karn
    if who == "plaintext":
        channel = grpc.insecure_channel(address)
    elif who == "no certificate":
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(pki.identity("operator").ca_pem))
    else:
        stranger = other_pki.identity("operator")
        # Trusts the mesh's CA for the server, but presents a certificate the mesh never issued.
        channel = grpc.secure_channel(
            address, grpc.ssl_channel_credentials(pki.identity("operator").ca_pem, stranger.key_pem, stranger.cert_pem)
        )
    with channel:
        stub = karn_pb2_grpc_stub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListTemplates(karn_pb2.ListTemplatesRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert domain.calls == 0


def test_a_client_that_does_not_trust_the_mesh_ca_cannot_be_fooled_into_talking(
    karn: tuple[str, CountingKarn], other_pki: Pki
) -> None:
    address, domain = karn
    with pytest.raises(Unavailable):
        _list(other_pki.client(address, "operator", max_attempts=1))
    assert domain.calls == 0


def test_an_identity_without_the_role_is_denied_naming_the_role(karn: tuple[str, CountingKarn], pki: Pki) -> None:
    address, domain = karn
    report = control_pb2.FieldReport(report_id="forged", run_id="r", blueprint_id="bp-1", seed_id="s")
    with KarnClient(pki.client(address, "operator")) as client, pytest.raises(PermissionDenied) as denied:
        client.submit_field_reports(karn_pb2.SubmitFieldReportsRequest(reports=[report]))
    assert denied.value.reason == "PERMISSION_DENIED"
    assert "tamiyo, tolaria" in denied.value.message and "'operator'" in denied.value.message
    assert denied.value.metadata == {"required_roles": "tamiyo, tolaria", "caller": "operator"}
    assert domain.calls == 0


def test_health_and_reflection_answer_any_identity_of_the_mesh(karn: tuple[str, CountingKarn], pki: Pki) -> None:
    address, _ = karn
    for name in ("tezzeret", "operator"):
        with grpc.secure_channel(address, channel_credentials(pki.identity(name))) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            services = {s.name for answer in answers for s in answer.list_services_response.service}
            assert "esper.leyline.v1.KarnService" in services


def karn_pb2_grpc_stub(channel: grpc.Channel) -> Any:
    from esper.leyline.v1 import karn_pb2_grpc

    return karn_pb2_grpc.KarnServiceStub(channel)
