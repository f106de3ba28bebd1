"""What the security tests share: a mesh PKI, another CA, and real servers that speak mTLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from esper.clients.base import ClientConfig
from esper.mesh.config import ServerConfig
from esper.mesh.server import ServiceRegistration
from esper.mesh.threaded import ServerThread
from esper.trust.identity import TlsIdentity, identity_files
from esper.trust.pki import ensure_identities
from tests.security.signed_bus import BusFactory, signed_buses
from tests.support.nats import NatsServer

IDENTITIES = ("urza", "tezzeret", "urabrask", "karn", "tamiyo", "simic", "nissa", "tolaria", "operator")


class Pki:
    """A mesh's PKI folder: `identity(name)` is one of its identities' TLS material."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def identity(self, name: str) -> TlsIdentity:
        return identity_files(self.directory, name).read()

    def client(self, address: str, name: str, **options: object) -> ClientConfig:
        return ClientConfig(address=address, tls=self.identity(name), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    ensure_identities(directory, IDENTITIES)
    return Pki(directory)


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA with identities of the same names: what an attacker can mint for themselves."""
    directory = tmp_path_factory.mktemp("other-pki") / "pki"
    ensure_identities(directory, IDENTITIES)
    return Pki(directory)


TlsServerFactory = Callable[..., ServerThread]


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[TlsServerFactory]:
    """Start `tls_server(registrations, as_identity)`: a real server speaking mTLS as that identity."""
    started: list[ServerThread] = []

    def start(registrations: Sequence[ServiceRegistration], identity: str, **config: object) -> ServerThread:
        settings = ServerConfig(service_name=identity, grace_seconds=0.0, tls=pki.identity(identity), **config)  # type: ignore[arg-type]
        server = ServerThread(registrations, settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def bus_for(nats_server: NatsServer, tmp_path: Path) -> Iterator[BusFactory]:
    """Signed buses on the test's NATS server (tests.security.signed_bus)."""
    yield from signed_buses(nats_server, tmp_path)
