"""The NATS and SeaweedFS command lines of deploy/ run with the same versions here (nats-server and weed
from .venv/bin): only ports, folders and the bind address are swapped for free loopback ones. Each
container's health check URL answers, JetStream is on, and the S3 bucket Urza uses exists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.deploy import compose_launches, compose_services
from tests.support.nats import free_port
from tests.support.seaweedfs import _free_port_pairs
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TOOLS = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[3]
_START_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 10.0


def _swap(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """argv with the value of each flag in `values` replaced ("--flag value" or "-flag=value" forms)."""
    out, index = [], 0
    while index < len(argv):
        arg = argv[index]
        name, eq, _ = arg.partition("=")
        if eq and name in values:
            out.append(f"{name}={values[name]}")
        elif arg in values:
            out.extend([arg, values[arg]])
            index += 1
        else:
            out.append(arg)
        index += 1
    return out


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _wait_for_status(url: str, process: subprocess.Popen[bytes], log: Path) -> int:
    """200 once the component answers; the last status if it never does; at once if it exits."""

    def status() -> int:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        return _http_status(url)

    try:
        return eventually(status, until=lambda code: code == 200, timeout=_START_TIMEOUT_SECONDS)
    except AssertionError:
        return _http_status(url)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(_STOP_TIMEOUT_SECONDS)


def _popen(argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as stream:
        return subprocess.Popen(
            argv, cwd=log.parent, stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )


def test_the_nats_command_serves_jetstream_and_its_health_check(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    from esper.trust.pki import ensure_identities

    nats = compose_services()["nats"]
    argv = [*nats["entrypoint"], *nats["command"]]
    monitor = nats["healthcheck"]["test"][-1]
    assert argv[:2] == ["nats-server", "--config"]
    # The config file as mounted, with the mounted paths pointing at this test's folders.
    pki = tmp_path / "pki"
    ensure_identities(pki, ["nats"])
    (pki / "nats.pem").rename(pki / "identity.pem")
    (pki / "nats.key").rename(pki / "identity.key")
    config = (ROOT / "deploy" / "nats" / "nats.conf").read_text(encoding="utf-8")
    local = tmp_path / "nats.conf"
    local.write_text(config.replace("/etc/esper/pki", str(pki)).replace('"/data"', f'"{tmp_path / "store"}"'))
    client_port, http_port = free_port(), free_port()
    command = [str(TOOLS / "nats-server"), "--config", str(local), "-a", "127.0.0.1", "-p", str(client_port)]
    started.append(_popen([*command, "-m", str(http_port)], tmp_path / "nats.log"))
    url = monitor.replace("127.0.0.1:8222", f"127.0.0.1:{http_port}")
    assert url != monitor and "js-enabled-only=true" in url
    assert _wait_for_status(url, started[0], tmp_path / "nats.log") == 200
    # The store folder the config names is where JetStream keeps its streams.
    assert (tmp_path / "store" / "jetstream").is_dir()


def test_the_s3_command_serves_the_bucket_urza_uses_with_the_configured_credentials(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    import boto3

    s3 = compose_services()["s3"]
    argv = [*s3["entrypoint"], *s3["command"]]
    assert argv[0].endswith("/weed")
    ports = dict(zip(("s3", "master", "volume", "filer", "admin"), _free_port_pairs(5), strict=True))
    swapped = _swap(argv[1:], {"-s3.port": str(ports["s3"]), "-dir": str(tmp_path / "data"), "-ip.bind": "127.0.0.1"})
    (tmp_path / "data").mkdir()
    extra = [f"-{name}.port={port}" for name, port in ports.items() if name != "s3"]
    credentials = {"AWS_ACCESS_KEY_ID": "deploy-check", "AWS_SECRET_ACCESS_KEY": "deploy-check-secret"}
    assert set(credentials) == set(s3["environment"])
    started.append(_popen([str(TOOLS / "weed"), *swapped, *extra], tmp_path / "weed.log", credentials))
    health = s3["healthcheck"]["test"][-1].replace("127.0.0.1:8333", f"127.0.0.1:{ports['s3']}")
    assert _wait_for_status(health, started[0], tmp_path / "weed.log") == 200

    urza = compose_launches()["urza"].parsed()
    bucket = urza.store.removeprefix("s3://").split("/")[0]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        region_name="us-east-1",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )
    eventually(
        lambda: [b["Name"] for b in client.list_buckets().get("Buckets", [])],
        until=lambda names: bucket in names,
        timeout=_START_TIMEOUT_SECONDS,
    )
    client.put_object(Bucket=bucket, Key="check", Body=b"kernel bytes")
    assert client.get_object(Bucket=bucket, Key="check")["Body"].read() == b"kernel bytes"
