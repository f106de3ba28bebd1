"""The compose health check of an Esper server, run as written against a real `esper serve` speaking mTLS
with the identity the check names: it passes while the server is SERVING and fails once it is gone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from esper.mesh.ports import GRPC_PORTS
from esper.trust.pki import ensure_identities
from tests.support.deploy import compose_services
from tests.support.servers import EsperServeProcess

pytestmark = pytest.mark.integration


def _secrets(pki: Path, name: str) -> dict[str, str]:
    """Where compose mounts the server's identity -> where this test keeps it."""
    return {
        f"/run/secrets/{name}-cert": str(pki / f"{name}.pem"),
        f"/run/secrets/{name}-key": str(pki / f"{name}.key"),
        "/run/secrets/esper-ca": str(pki / "ca.pem"),
    }


def run_check(name: str, address: str, pki: Path) -> int:
    test = compose_services()[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "esper", "health"]
    assert test[-1] == f"127.0.0.1:{GRPC_PORTS[name]}"
    mounted = _secrets(pki, name)
    argv = [mounted.get(arg, arg) for arg in test[3:-1]]
    done = subprocess.run(
        [sys.executable, "-m", "esper.cli.main", "health", *argv, address], capture_output=True, text=True, timeout=60
    )
    return done.returncode


def test_the_health_check_follows_the_server(esper_serve: Callable[..., EsperServeProcess], tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ensure_identities(pki, ["karn"])
    identity = [
        f"--{flag}={path}"
        for flag, path in zip(("tls-cert", "tls-key", "tls-ca"), _secrets(pki, "karn").values(), strict=True)
    ]
    server = esper_serve("karn", *identity)
    assert run_check("karn", server.address, pki) == 0
    assert server.stop() == 0
    assert run_check("karn", server.address, pki) != 0


def test_every_esper_server_runs_the_same_check_on_its_own_port() -> None:
    checks = {name: compose_services()[name]["healthcheck"]["test"] for name in GRPC_PORTS}
    shapes = {tuple(arg.replace(name, "NAME") for arg in test[:-1]) for name, test in checks.items()}
    assert len(shapes) == 1
