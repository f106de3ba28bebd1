"""serve_forever: port file only once serving, background tasks, clean exit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from esper.mesh.config import ServerConfig
from esper.mesh.server import serve_forever
from tests.rpc.mesh.fakes import ScriptedKarn, karn_registration


class WorkerCrashed(Exception):
    pass


async def _wait_for(path: Path) -> int:
    while not path.exists():
        await asyncio.sleep(0.01)
    return int(path.read_text(encoding="ascii"))


def test_a_failing_background_task_stops_the_server_and_is_raised(tmp_path: Path) -> None:
    port_file = tmp_path / "run" / "karn.port"
    seen: dict[str, object] = {}

    async def watcher(stopping: asyncio.Event) -> None:
        await stopping.wait()
        seen["stop_signalled"] = True

    async def crasher(stopping: asyncio.Event) -> None:
        port = await _wait_for(port_file)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            seen["health"] = answer.status
        raise WorkerCrashed("consumer lost its bus")

    async def main() -> None:
        config = ServerConfig(service_name="karn", grace_seconds=1.0)
        registrations = [karn_registration(ScriptedKarn())]
        await serve_forever(config, registrations, port_file, background=[watcher, crasher])

    with pytest.raises(WorkerCrashed):
        asyncio.run(main())
    assert seen == {"health": health_pb2.HealthCheckResponse.SERVING, "stop_signalled": True}
    assert not port_file.exists()
