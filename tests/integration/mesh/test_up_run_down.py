"""The local mesh end to end: `esper up`, grpcurl on every server, a mesh run against its embedded twin,
its germination traced across processes and shown live by Nissa, the Tamiyo-down drill (with its alert
firing and resolving), then `esper down` leaving no process behind.

The tests of this module run in order on one mesh (module fixture): the drill
stops the mesh's Tamiyo, and the last test takes the mesh down.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from esper.cli.local_mesh import process_alive
from esper.mesh.addresses import SUBSYSTEMS
from tests.integration.mesh.support import esper, fast_config, lines, operator_tls, wait_for_stored_reports
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

GRPCURL = Path(sys.executable).parent / "grpcurl"
CHROMIUM = Path("/usr/bin/chromium")
SERVICES = {
    "urza": "UrzaService",
    "tezzeret": "TezzeretService",
    "urabrask": "UrabraskService",
    "karn": "KarnService",
    "tamiyo": "TamiyoService",
    "simic": "SimicService",
    "nissa": "NissaService",
    "tolaria": "TolariaService",
}
# Ten epochs see a seed through to a terminal stage, so the run also produces field reports.
EPOCHS = 10
RUN_ARGS = ["--dataset", "digits", "--epochs", str(EPOCHS), "--seed", "3", "--no-baseline", "--json"]


@dataclass
class MeshUnderTest:
    root: Path
    directory: Path
    config: Path

    @property
    def file(self) -> Path:
        return self.directory / "mesh.json"

    def document(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.file.read_text())
        return data


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshUnderTest]:
    root = tmp_path_factory.mktemp("mesh")
    local = MeshUnderTest(root, root / "mesh", fast_config(root, "assets-mesh"))
    started = time.monotonic()
    esper("up", "--dir", str(local.directory), "--config", str(local.config))
    print(f"esper up took {time.monotonic() - started:.1f} s")
    pids = [entry["pid"] for entry in local.document().values() if "pid" in entry]
    try:
        yield local
    finally:
        # A safety net only: the last test takes the mesh down and checks it.
        esper("down", "--dir", str(local.directory), check=False)
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_up_writes_every_address_and_every_server_is_serving(mesh: MeshUnderTest) -> None:
    document = mesh.document()
    assert set(document) == {*SUBSYSTEMS, "nats", "pki"}
    assert document["nats"]["url"].startswith("nats://127.0.0.1:")
    for name in SUBSYSTEMS:
        assert document[name]["grpc"].startswith("127.0.0.1:") and process_alive(document[name]["pid"])
    status = json.loads(esper("status", "--dir", str(mesh.directory), "--json").stdout)
    assert status["healthy"] and set(status["servers"]) == {*SUBSYSTEMS, "nats"}


@pytest.mark.parametrize("name", SUBSYSTEMS)
def test_grpcurl_lists_the_service_health_and_reflection(mesh: MeshUnderTest, name: str) -> None:
    address = mesh.document()[name]["grpc"]
    pki = mesh.document()["pki"]
    credentials = ["-cacert", pki["ca"], "-cert", pki["operator_cert"], "-key", pki["operator_key"]]
    listed = subprocess.run(
        [str(GRPCURL), *credentials, address, "list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert f"esper.leyline.v1.{SERVICES[name]}" in listed
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(listed)
    if name == "tolaria":
        assert "esper.leyline.v1.KasminaService" in listed


def _stored_subjects(url: str, stream: str) -> list[str]:
    async def read() -> list[str]:
        connection = await nats.connect(url)
        try:
            js = connection.jetstream()
            info = await js.stream_info(stream)
            if not info.state.messages:
                return []
            return [
                (await js.get_msg(stream, seq)).subject or ""
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
            ]
        finally:
            await connection.close()

    return asyncio.run(read())


def _simic_reports(mesh: MeshUnderTest, run_id: str, expected: int) -> set[str]:
    """The report ids Simic stored for the run, once it holds `expected` of them (or after 60 s)."""
    found = wait_for_stored_reports(mesh.document()["simic"]["grpc"], run_id, expected, tls=operator_tls(mesh.file))
    assert len(found) == len(set(found)), "a report was stored twice"
    return set(found)


def test_a_mesh_run_writes_the_run_folder_and_matches_the_embedded_run(mesh: MeshUnderTest) -> None:
    out = mesh.root / "run"
    done = esper("run", "--mesh", str(mesh.file), *RUN_ARGS, "--out", str(out), "--config", str(mesh.config))
    summary = json.loads(done.stdout)
    for name in (
        "summary.json",
        "metrics.jsonl",
        "events.jsonl",
        "lineage.json",
        "model.pt",
        "report.png",
        "config.json",
    ):
        assert (out / name).is_file(), name
    assert summary["epochs"] == EPOCHS and summary["seeds_germinated"] >= 1
    events = lines(out / "events.jsonl")
    assert "mesh: urza" in events[0]["notice"]
    # Kasmina published each boundary's seed telemetry on Oona.
    telemetry = [
        s
        for s in _stored_subjects(mesh.document()["nats"]["url"], "ESPER_TELEMETRY")
        if s.startswith(f"esper.telemetry.{summary['run_id']}.seed.")
    ]
    assert len(telemetry) >= EPOCHS
    # The run's field reports reached Simic over JetStream, each stored once.
    reports = {e["field_report"]["report_id"] for e in events if e["kind"] == "field_report"}
    assert reports, "a seed reached a terminal stage"
    assert _simic_reports(mesh, summary["run_id"], len(reports)) == reports

    twin = mesh.root / "embedded"
    embedded_config = fast_config(mesh.root, "assets-embedded")
    twin_summary = json.loads(esper("run", *RUN_ARGS, "--out", str(twin), "--config", str(embedded_config)).stdout)
    # Same code, same seed, byte-identical kernels (same IR and toolchain): the same numbers, to the bit.
    assert summary["final_test_accuracy"] == twin_summary["final_test_accuracy"]
    assert [m["val_accuracy"] for m in lines(out / "metrics.jsonl")] == [
        m["val_accuracy"] for m in lines(twin / "metrics.jsonl")
    ]
    for key in ("params_final", "seeds_germinated", "seeds_fossilized", "seeds_culled", "best_val_accuracy"):
        assert summary[key] == twin_summary[key], key


def _run_id(mesh: MeshUnderTest) -> str:
    run_id: str = json.loads((mesh.root / "run" / "summary.json").read_text())["run_id"]
    return run_id


def _germination_trace(mesh: MeshUnderTest, run_id: str) -> dict[str, Any] | None:
    traces = json.loads(esper("traces", "--mesh", str(mesh.file), "--run", run_id, "--json").stdout)["traces"]
    for trace in traces:
        if any(
            span["name"] == "kasmina.apply_command"
            and span["attributes"].get("esper.command_type") == "COMMAND_TYPE_REQUEST_GERMINATION"
            for span in trace["spans"]
        ):
            found: dict[str, Any] = trace
            return found
    return None


def test_a_germination_is_one_trace_from_tamiyo_s_decision_to_kasmina_s_graft(mesh: MeshUnderTest) -> None:
    run_id = _run_id(mesh)
    trace = eventually(lambda: _germination_trace(mesh, run_id), timeout=60, what="a germination trace in Nissa")
    spans = {span["span_id"]: span for span in trace["spans"]}
    assert {"tolaria", "tamiyo", "urza"} <= {span["service_name"] for span in spans.values()}
    names = {span["name"] for span in spans.values()}
    assert {
        "tolaria.epoch",
        "tolaria.hook",
        "tamiyo.step",
        "kasmina.apply_command",
        "kasmina.kernel_fetch",
        "kasmina.graft",
    } <= names

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return spans[span["parent_span_id"]]

    # Parent links cross processes: Tamiyo's Step serves Tolaria's call, Urza serves Tamiyo's query.
    step_server = next(s for s in spans.values() if s["service_name"] == "tamiyo" and s["name"].endswith("/Step"))
    assert parent(step_server)["service_name"] == "tolaria" and parent(parent(step_server))["name"] == "tolaria.hook"
    urza_served = [s for s in spans.values() if s["service_name"] == "urza"]
    assert urza_served and all(parent(s)["service_name"] in {"tamiyo", "tolaria"} for s in urza_served)
    assert any(parent(parent(s))["service_name"] == "tamiyo" for s in urza_served)
    # The graft hangs under the command that loaded the kernel, itself under the germination.
    graft = next(s for s in spans.values() if s["name"] == "kasmina.graft")
    germination = parent(parent(graft))
    assert germination["attributes"]["esper.command_type"] == "COMMAND_TYPE_REQUEST_GERMINATION"
    assert germination["attributes"]["esper.run_id"] == run_id
    roots = [s for s in spans.values() if not s["parent_span_id"]]
    assert [root["name"] for root in roots] == ["tolaria.epoch"]


def test_nissa_summarizes_the_run_and_mission_control_shows_it(mesh: MeshUnderTest, tmp_path: Path) -> None:
    from esper.clients import NissaClient
    from esper.clients.base import ClientConfig
    from esper.leyline.v1 import nissa_pb2

    run_id = _run_id(mesh)
    with NissaClient(ClientConfig(address=mesh.document()["nissa"]["grpc"], tls=operator_tls(mesh.file))) as nissa:
        summary = nissa.get_run_summary(nissa_pb2.GetRunSummaryRequest(run_id=run_id))
    assert summary.last_epoch == EPOCHS - 1
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (Debian package chromium) for the page")
    url = mesh.document()["nissa"]["web"] + "?transport=poll"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert run_id in dom and "Waiting for a run" not in dom


def _alert_states(mesh: MeshUnderTest, name: str) -> list[str]:
    alerts = json.loads(esper("alerts", "--mesh", str(mesh.file), "--json").stdout)["alerts"]
    return [alert["state"] for alert in alerts if alert["name"] == name]


def test_with_tamiyo_down_a_mesh_run_finishes_conservatively_and_says_so(mesh: MeshUnderTest) -> None:
    tamiyo = mesh.document()["tamiyo"]["pid"]
    os.kill(tamiyo, signal.SIGTERM)
    eventually(lambda: not process_alive(tamiyo), timeout=60, what="Tamiyo to exit")
    assert esper("status", "--dir", str(mesh.directory), check=False).returncode == 1
    out = mesh.root / "no-tamiyo"
    done = esper("run", "--mesh", str(mesh.file), *RUN_ARGS, "--out", str(out), "--config", str(mesh.config))
    summary = json.loads(done.stdout)
    assert summary["epochs"] == EPOCHS and summary["seeds_germinated"] == 0
    notices = [e["notice"] for e in lines(out / "events.jsonl") if e["kind"] == "notice"]
    unavailable = [n for n in notices if "Tamiyo unavailable (" in n and "running conservatively" in n]
    assert [n.split(":")[0] for n in unavailable] == [f"epoch {epoch}" for epoch in range(EPOCHS)]


def test_tamiyo_down_fires_tamiyo_unavailable_and_a_restart_resolves_it(mesh: MeshUnderTest) -> None:
    eventually(lambda: "FIRING" in _alert_states(mesh, "tamiyo_unavailable"), timeout=60, what="a firing alert")
    esper("restart", "tamiyo", "--dir", str(mesh.directory))
    eventually(lambda: _alert_states(mesh, "tamiyo_unavailable") == ["RESOLVED"], timeout=60, what="a resolved alert")
    status = json.loads(esper("status", "--dir", str(mesh.directory), "--json").stdout)
    assert status["healthy"]


def test_down_stops_every_process_and_leaves_none_behind(mesh: MeshUnderTest) -> None:
    pids = {name: entry["pid"] for name, entry in mesh.document().items() if "pid" in entry}
    esper("down", "--dir", str(mesh.directory))
    assert not [name for name, pid in pids.items() if process_alive(pid)]
    assert not mesh.file.exists()
    assert "nothing to stop" in esper("down", "--dir", str(mesh.directory)).stderr
