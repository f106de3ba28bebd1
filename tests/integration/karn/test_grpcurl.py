"""`esper serve karn` as a real process, explored with the real grpcurl through reflection."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from tests.support.servers import TOOLS_DIR, EsperServeProcess

pytestmark = pytest.mark.integration

KARN = "esper.leyline.v1.KarnService"


def _grpcurl(address: str, *args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(TOOLS_DIR / "grpcurl"), "-plaintext"]
    if data is not None:
        command += ["-d", data]
    return subprocess.run([*command, address, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def karn(esper_serve: Callable[..., EsperServeProcess]) -> EsperServeProcess:
    return esper_serve("karn")


def test_grpcurl_lists_karn_health_and_reflection(karn: EsperServeProcess) -> None:
    listed = _grpcurl(karn.address, "list")
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {KARN, "grpc.health.v1.Health"} <= services
    assert services & {"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}


def test_grpcurl_describes_karn_without_any_proto(karn: EsperServeProcess) -> None:
    described = _grpcurl(karn.address, "describe", KARN)
    assert described.returncode == 0, described.stderr
    for rpc in ("ListTemplates", "GetTemplate", "QueryTemplates", "SubmitFieldReports"):
        assert f"rpc {rpc} " in described.stdout


def test_grpcurl_lists_every_template(karn: EsperServeProcess) -> None:
    answer = _grpcurl(karn.address, f"{KARN}/ListTemplates", data='{"page_size": 1000}')
    assert answer.returncode == 0, answer.stderr
    page = json.loads(answer.stdout)
    ids = [template["templateId"] for template in page["templates"]]
    assert len(ids) >= 50
    assert len(set(ids)) == len(ids) == page["totalSize"]
    assert "nextPageToken" not in page


def test_grpcurl_sees_not_found_for_an_unknown_template(karn: EsperServeProcess) -> None:
    answer = _grpcurl(karn.address, f"{KARN}/GetTemplate", data='{"template_id": "no_such_template"}')
    assert answer.returncode != 0
    assert "Code: NotFound" in answer.stderr
    assert "TEMPLATE_NOT_FOUND" in answer.stderr
    # ...and the server is still there.
    assert _grpcurl(karn.address, "list").returncode == 0


def test_grpcurl_sees_invalid_argument_naming_the_field(karn: EsperServeProcess) -> None:
    answer = _grpcurl(karn.address, f"{KARN}/ListTemplates", data='{"page_size": -3}')
    assert "Code: InvalidArgument" in answer.stderr
    assert '"field":"page_size"' in answer.stderr.replace(" ", "")


def test_sigterm_stops_the_server_cleanly(karn: EsperServeProcess) -> None:
    assert _grpcurl(karn.address, "grpc.health.v1.Health/Check").returncode == 0
    assert karn.stop() == 0
    assert not karn.port_file.exists()
    assert "Traceback" not in karn.log()
    assert _grpcurl(karn.address, "list").returncode != 0
