"""deploy/nats/nats.conf run by the real nats-server: TLS only, each service its own user by certificate,
allowed to publish only where it does on Oona."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from esper.trust.pki import ensure_identities
from tests.support.nats import NATS_SERVER, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy" / "nats" / "nats.conf"


@pytest.fixture
def nats_tls(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not NATS_SERVER.exists():
        pytest.skip(f"{NATS_SERVER} is not installed")
    pki = tmp_path / "pki"
    ensure_identities(pki, ["nats", "tolaria", "karn", "operator"], hosts=("127.0.0.1", "localhost", "nats"))
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    for source, target in (("ca.pem", "ca.pem"), ("nats.pem", "identity.pem"), ("nats.key", "identity.key")):
        shutil.copy(pki / source, mounted / target)
    config = tmp_path / "nats.conf"
    config.write_text(
        CONFIG.read_text().replace("/etc/esper/pki", str(mounted)).replace('"/data"', f'"{tmp_path / "data"}"')
    )
    port = free_port()
    log = (tmp_path / "nats.log").open("wb")
    command = [str(NATS_SERVER), "-c", str(config), "-a", "127.0.0.1", "-p", str(port), "-m", "0"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "nats.log").read_text()
            time.sleep(0.05)
    try:
        yield f"tls://127.0.0.1:{port}", pki
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        log.close()


def _context(pki: Path, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    if name is not None:
        context.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return context


def _publish(url: str, pki: Path, name: str | None, subject: str) -> str:
    """'stored', or how the publish failed."""

    async def attempt() -> str:
        errors: list[Exception] = []

        async def on_error(error: Exception) -> None:
            errors.append(error)

        try:
            connection = await asyncio.wait_for(
                nats.connect(
                    url,
                    tls=_context(pki, name),
                    connect_timeout=2,
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    error_cb=on_error,
                ),
                10,
            )
        except (NatsError, OSError, ssl.SSLError, TimeoutError) as error:
            return f"refused: {type(error).__name__}"
        try:
            js = connection.jetstream(timeout=2)
            await js.add_stream(name="ESPER_FIELD_REPORTS", subjects=["esper.field_reports.>"])
            await js.publish(subject, b"x", timeout=2)
            return "stored"
        except (NatsError, TimeoutError) as error:
            return f"denied: {type(error).__name__} {errors[-1] if errors else ''}"
        finally:
            await connection.close()

    return asyncio.run(attempt())


def test_each_service_publishes_only_where_it_may(nats_tls: tuple[str, Path]) -> None:
    url, pki = nats_tls
    assert _publish(url, pki, "tolaria", "esper.field_reports.run-1") == "stored"
    forged = _publish(url, pki, "karn", "esper.field_reports.run-1")
    assert forged.startswith("denied") and "ermissions" in forged


def test_clients_without_a_mesh_certificate_are_refused(nats_tls: tuple[str, Path], tmp_path: Path) -> None:
    url, pki = nats_tls
    assert _publish(url, pki, None, "esper.field_reports.run-1").startswith("refused")
    stranger = tmp_path / "stranger"
    ensure_identities(stranger, ["tolaria"])
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(stranger / "tolaria.pem"), str(stranger / "tolaria.key"))

    async def connect() -> str:
        try:
            connection = await asyncio.wait_for(
                nats.connect(url, tls=context, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0),
                10,
            )
        except (NatsError, OSError, ssl.SSLError, TimeoutError) as error:
            return f"refused: {type(error).__name__}"
        await connection.close()
        return "connected"

    assert asyncio.run(connect()).startswith("refused")
