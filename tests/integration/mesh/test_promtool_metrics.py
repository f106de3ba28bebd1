"""`promtool check metrics` passes on the /metrics of every server of a real local mesh, after some traffic.

`esper up` starts every servable subsystem as its own process; each lists its
/metrics address in mesh.json. A few rpcs per server (one of them refused) give the
rpc histogram real label values before each endpoint is scraped and linted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message

from esper.cli.local_mesh import process_alive
from esper.cli.serve import SERVE_TARGETS
from esper.leyline.v1 import (
    karn_pb2,
    nissa_pb2,
    simic_pb2,
    tamiyo_pb2,
    tezzeret_pb2,
    tolaria_pb2,
    urabrask_pb2,
    urza_pb2,
)
from esper.mesh.addresses import SUBSYSTEMS, MeshAddresses, load_mesh
from esper.mesh.tls import secure_channel
from esper.trust.identity import TlsIdentity
from tests.integration.mesh.support import esper
from tests.support.waiting import eventually

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(PROMTOOL).is_file(), reason=f"promtool is not installed ({PROMTOOL} missing)"),
]


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    request: Message

    @property
    def path(self) -> str:
        return f"/esper.leyline.v1.{self.service}/{self.method}"


# A cheap rpc on each server; the unknown blueprint and run are refused (NOT_FOUND or INVALID_ARGUMENT).
TRAFFIC: dict[str, list[Call]] = {
    "urza": [
        Call("UrzaService", "ListBlueprints", urza_pb2.ListBlueprintsRequest()),
        Call("UrzaService", "GetBlueprint", urza_pb2.GetBlueprintRequest(blueprint_id="bp-0123456789abcdef")),
    ],
    "tezzeret": [Call("TezzeretService", "GetWorkerStatus", tezzeret_pb2.GetWorkerStatusRequest())],
    "urabrask": [Call("UrabraskService", "ListValidationReports", urabrask_pb2.ListValidationReportsRequest())],
    "karn": [Call("KarnService", "ListTemplates", karn_pb2.ListTemplatesRequest())],
    "tamiyo": [Call("TamiyoService", "GetStatus", tamiyo_pb2.GetStatusRequest())],
    "simic": [Call("SimicService", "ListFieldReports", simic_pb2.ListFieldReportsRequest())],
    "nissa": [Call("NissaService", "ListAlerts", nissa_pb2.ListAlertsRequest())],
    "tolaria": [
        Call("TolariaService", "ListRuns", tolaria_pb2.ListRunsRequest()),
        Call("TolariaService", "GetRun", tolaria_pb2.GetRunRequest(run_id="no-such-run")),
    ],
}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshAddresses]:
    directory = tmp_path_factory.mktemp("metrics-mesh") / "mesh"
    esper("up", "--dir", str(directory))
    addresses = load_mesh(directory / "mesh.json")
    try:
        yield addresses
    finally:
        esper("down", "--dir", str(directory), check=False)
        for pid in addresses.pids.values():
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def _call(address: str, call: Call, tls: TlsIdentity | None) -> grpc.StatusCode:
    with secure_channel(address, tls) if tls is not None else grpc.insecure_channel(address) as channel:
        rpc = channel.unary_unary(call.path, request_serializer=None, response_deserializer=None)
        try:
            rpc(call.request.SerializeToString(), timeout=15)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=15) as answer:
        assert answer.status == 200
        return str(answer.read().decode("utf-8"))


def _promtool(exposition: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)


def test_every_servable_subsystem_is_in_the_mesh_with_a_metrics_address(mesh: MeshAddresses) -> None:
    assert set(SERVE_TARGETS) <= set(SUBSYSTEMS) == set(TRAFFIC)
    assert set(mesh.metrics) == set(SUBSYSTEMS)
    assert all(address.startswith("127.0.0.1:") for address in mesh.metrics.values())
    assert len(set(mesh.metrics.values()) | set(mesh.grpc.values())) == 2 * len(SUBSYSTEMS)


@pytest.mark.parametrize("name", SUBSYSTEMS)
def test_promtool_check_metrics_passes_on_the_servers_output(mesh: MeshAddresses, name: str) -> None:
    codes = [_call(mesh.address(name), call, mesh.operator_tls()) for call in TRAFFIC[name]]
    assert codes[0] == grpc.StatusCode.OK
    assert all(code != grpc.StatusCode.OK for code in codes[1:])
    recorded = [
        f'esper_rpc_server_duration_seconds_count{{grpc_code="{code.name}",grpc_method="{call.method}",'
        f'grpc_service="esper.leyline.v1.{call.service}"}}'
        for call, code in zip(TRAFFIC[name], codes, strict=True)
    ]
    # The client has its answer before the server has recorded the call: scrape until it has.
    exposition = eventually(
        lambda: _scrape(mesh.metrics[name]),
        until=lambda text: all(sample in text for sample in recorded),
        what=f"{name}'s /metrics recording {', '.join(call.path for call in TRAFFIC[name])}",
    )

    checked = _promtool(exposition)
    assert checked.returncode == 0, f"promtool on {name}'s /metrics:\n{checked.stdout}{checked.stderr}"
    assert (checked.stdout + checked.stderr).strip() == ""
    assert "esper_build_info{" in exposition and "process_start_time_seconds" in exposition


def test_promtool_does_reject_a_bad_exposition() -> None:
    # The check above can only fail if promtool really lints: a counter without _total must be refused.
    bad = "# HELP esper_bad_requests Requests.\n# TYPE esper_bad_requests counter\nesper_bad_requests 1\n"
    checked = _promtool(bad)
    assert checked.returncode != 0 and "_total" in checked.stdout + checked.stderr
