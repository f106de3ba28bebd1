"""The compose health check of an Esper server, run as written against a real `esper serve`: it passes
while the server is SERVING and fails once the server is gone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from esper.mesh.ports import GRPC_PORTS
from tests.support.deploy import compose_services
from tests.support.servers import EsperServeProcess

pytestmark = pytest.mark.integration


def run_check(name: str, address: str) -> int:
    test = compose_services()[name]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    assert test[-1] == f"127.0.0.1:{GRPC_PORTS[name]}"
    # The image's `python` is the venv's; here that is the interpreter running the tests.
    done = subprocess.run([sys.executable, *test[2:-1], address], capture_output=True, text=True, timeout=60)
    return done.returncode


def test_the_health_check_follows_the_server(esper_serve: Callable[..., EsperServeProcess]) -> None:
    server = esper_serve("karn")
    assert run_check("karn", server.address) == 0
    assert server.stop() == 0
    assert run_check("karn", server.address) != 0


def test_every_esper_server_runs_the_same_check_on_its_own_port() -> None:
    checks = {name: compose_services()[name]["healthcheck"]["test"] for name in GRPC_PORTS}
    assert {tuple(test[:-1]) for test in checks.values()} == {tuple(checks["karn"][:-1])}
