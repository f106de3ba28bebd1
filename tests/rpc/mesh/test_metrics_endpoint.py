"""A server started with metrics on serves /metrics over HTTP: the rpc histogram after a call, 404 elsewhere."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from esper.errors import Unavailable
from esper.leyline.v1 import karn_pb2, karn_pb2_grpc
from esper.mesh.config import ServerConfig
from esper.mesh.server import serve_forever, start_server
from esper.mesh.threaded import ServerThread
from tests.rpc.mesh.fakes import ScriptedKarn, karn_registration

RPC_COUNT = (
    'esper_rpc_server_duration_seconds_count{grpc_code="OK",grpc_method="GetTemplate",'
    'grpc_service="esper.leyline.v1.KarnService"}'
)


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode("utf-8")


def _counted(body: str) -> float:
    for line in body.splitlines():
        if line.startswith(RPC_COUNT + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def server() -> Iterator[ServerThread]:
    config = ServerConfig(service_name="karn", grace_seconds=0.0, metrics_port=0)
    server = ServerThread([karn_registration(ScriptedKarn())], config)
    yield server
    server.stop()


def test_metrics_show_the_rpc_histogram_after_a_call(server: ServerThread) -> None:
    port = server.running.metrics_port
    assert port is not None and port != server.port
    status, content_type, body = _get(port, "/metrics")
    before = _counted(body)
    with grpc.insecure_channel(server.address) as channel:
        karn_pb2_grpc.KarnServiceStub(channel).GetTemplate(karn_pb2.GetTemplateRequest(template_id="t"), timeout=10)
    status, content_type, body = _get(port, "/metrics")
    assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert _counted(body) == before + 1
    assert "# TYPE esper_rpc_server_duration_seconds histogram" in body
    assert 'esper_build_info{version="' in body


@pytest.mark.parametrize("path", ["/", "/metrics/extra", "/favicon.ico", "/healthz"])
def test_every_other_path_is_not_found(server: ServerThread, path: str) -> None:
    port = server.running.metrics_port
    assert port is not None
    status, _, body = _get(port, path)
    assert status == 404 and "/metrics" in body


def test_stopping_the_server_closes_the_metrics_port() -> None:
    server = ServerThread(
        [karn_registration(ScriptedKarn())], ServerConfig(service_name="karn", grace_seconds=0.0, metrics_port=0)
    )
    port = server.running.metrics_port
    assert port is not None and _get(port, "/metrics")[0] == 200
    server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_no_metrics_port_means_no_endpoint() -> None:
    server = ServerThread([karn_registration(ScriptedKarn())], ServerConfig(service_name="karn", grace_seconds=0.0))
    try:
        assert server.running.metrics is None and server.running.metrics_port is None
    finally:
        server.stop()


def test_a_taken_metrics_port_fails_the_start_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]

        async def start() -> None:
            config = ServerConfig(service_name="karn", metrics_port=busy)
            await start_server(config, [karn_registration(ScriptedKarn())])

        with pytest.raises(Unavailable, match=f"metrics on 127.0.0.1:{busy}"):
            asyncio.run(start())


def test_serve_forever_writes_the_metrics_port_file_first_and_removes_both(tmp_path: Path) -> None:
    port_file, metrics_file = tmp_path / "run" / "karn.port", tmp_path / "run" / "karn.metrics.port"
    seen: dict[str, object] = {}

    async def scraper(stopping: asyncio.Event) -> None:
        while not port_file.exists():
            await asyncio.sleep(0.01)
        seen["metrics_file_first"] = metrics_file.exists()
        metrics_port = int(metrics_file.read_text(encoding="ascii"))
        status, _, body = await asyncio.to_thread(_get, metrics_port, "/metrics")
        seen["scrape"] = (status, "esper_rpc_server_duration_seconds" in body)
        stopping.set()

    async def main() -> None:
        config = ServerConfig(service_name="karn", grace_seconds=0.0, metrics_port=0)
        await serve_forever(
            config, [karn_registration(ScriptedKarn())], port_file, background=[scraper], metrics_port_file=metrics_file
        )

    asyncio.run(main())
    assert seen == {"metrics_file_first": True, "scrape": (200, True)}
    assert not port_file.exists() and not metrics_file.exists()
