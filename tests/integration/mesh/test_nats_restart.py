"""Fault drill: NATS killed mid-run and started again; the run finishes and Simic stores every report once.

The mesh's Tamiyo grows one seed at a time, so the run's two field reports come
seven epochs apart. NATS is SIGKILLed as soon as the first one is in the run
folder and stays down until the second one is there too (and a few seconds of
training have gone by), so the second report can reach Simic only through the
publishers' local buffers (Tamiyo's and Tolaria's, which both publish it). NATS
then starts again with the very command line `esper up` gave it, on the same port
and store, and the run goes on to its last epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest

from esper.cli.local_mesh import process_alive
from esper.mesh.addresses import write_mesh
from tests.integration.mesh.support import (
    ESPER,
    esper,
    fast_config,
    operator_tls,
    stored_report_ids,
    wait_for_stored_reports,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# One seed at a time: the first report comes at epoch 8, the second at epoch 15.
EPOCHS = 18
# NATS stays down at least this long (and until the second report is in the run folder).
MIN_OUTAGE_SECONDS = 3.0
WAIT_SECONDS = 300.0


@dataclass
class DrillMesh:
    root: Path
    directory: Path
    config: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def document(self, name: str = "mesh.json") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.directory / name).read_text())
        return data

    def pids(self) -> dict[str, int]:
        """Every pid the mesh files name."""
        pids = {name: pid for name, pid in self.document("pids.json").items()}
        return pids | {name: entry["pid"] for name, entry in self.document().items() if "pid" in entry}


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[DrillMesh]:
    local = DrillMesh(tmp_path, tmp_path / "mesh", fast_config(tmp_path, "assets", max_concurrent_seeds=1))
    esper("up", "--dir", str(local.directory), "--config", str(local.config))
    pids = set(local.pids().values())
    try:
        yield local
    finally:
        # A safety net only: the test takes the mesh down and checks it.
        esper("down", "--dir", str(local.directory), check=False)
        for process in local.started:
            if process.poll() is None:
                process.kill()
            process.wait(30)
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def _report_ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["field_report"]["report_id"] for event in events if event["kind"] == "field_report"]


def _live_folder(mesh: DrillMesh) -> Path:
    """The folder the mesh's Tolaria is writing the run into (under its runs root; --out gets a copy at the end)."""
    folders = sorted((mesh.directory / "tolaria" / "runs").glob("run-*"), key=lambda path: path.stat().st_mtime)
    return folders[-1] if folders else mesh.directory / "tolaria" / "runs" / "none-yet"


def _events(out: Path) -> list[dict[str, Any]]:
    """The run's events so far: complete lines only (the run may be writing the last one)."""
    path = out / "events.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def _wait(what: str, done: Callable[[], bool], run: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `done` holds; fail naming `what` at once if the run ends first, or when the wait runs out."""

    def check() -> bool:
        if run.poll() is not None:
            raise RuntimeError(f"the run exited {run.returncode} before {what}:\n{log.read_text()}")
        return done()

    try:
        eventually(check, timeout=WAIT_SECONDS, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log.read_text()}") from None


def _nats_port(url: str) -> int:
    return int(url.rpartition(":")[2])


def _greets(port: int) -> bool:
    """Whether a NATS server answers on the port (it greets every new connection with INFO)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            return sock.recv(4) == b"INFO"
    except OSError:
        return False


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def _bounded(what: str, done: Callable[[], bool], seconds: float = 60.0) -> None:
    eventually(done, timeout=seconds, what=what)


def _kill_nats(mesh: DrillMesh) -> list[str]:
    """SIGKILL the mesh's nats-server once its port is known; returns the command line it ran with."""
    pid, port = mesh.document()["nats"]["pid"], _nats_port(mesh.document()["nats"]["url"])
    command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    os.kill(pid, signal.SIGKILL)
    _bounded(f"refusing connections on NATS's port {port} after SIGKILL", lambda: _refuses(port))
    return command


def _restart_nats(mesh: DrillMesh, command: list[str]) -> None:
    """Start nats-server again as `esper up` did (same flags, same store), on the port it had; record its pid."""
    url = mesh.document()["nats"]["url"]
    port = _nats_port(url)
    # `esper up` lets nats-server choose a free port (-p -1); the clients know the one it chose.
    assert "-p" in command and "-sd" in command, command
    assert command[command.index("-sd") + 1] == str(mesh.directory / "nats"), command
    again = list(command)
    again[again.index("-p") + 1] = str(port)
    with (mesh.directory / "logs" / "nats.log").open("ab") as log:
        process = subprocess.Popen(
            again,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=mesh.directory,
            start_new_session=True,
        )
    mesh.started.append(process)
    _bounded(f"serving NATS on port {port} again", lambda: process.poll() is None and _greets(port))
    # `esper down` stops what the mesh files name: the new pid replaces the killed one.
    document = mesh.document()
    document["nats"]["pid"] = process.pid
    write_mesh(mesh.directory / "mesh.json", document)
    write_mesh(mesh.directory / "pids.json", mesh.document("pids.json") | {"nats": process.pid})


def _jetstream_view(url: str, run_id: str = "") -> tuple[int, int]:
    """Field-report messages JetStream holds for the run, and those Simic's consumer has not acked yet."""

    async def read() -> tuple[int, int]:
        connection = await nats.connect(url)
        try:
            js = connection.jetstream()
            subjects = f"esper.field_reports.{run_id}" if run_id else None
            stream = await js.stream_info("ESPER_FIELD_REPORTS", subjects_filter=subjects)
            held = sum((stream.state.subjects or {}).values())
            consumer = await js.consumer_info("ESPER_FIELD_REPORTS", "simic")
            return held, (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
        finally:
            await connection.close()

    return asyncio.run(read())


def test_nats_killed_mid_run_and_restarted_every_field_report_reaches_simic_once(mesh: DrillMesh) -> None:
    out, log = mesh.root / "run", mesh.root / "run.log"
    with log.open("wb") as sink:
        run = subprocess.Popen(
            [
                *ESPER,
                "run",
                "--mesh",
                str(mesh.directory / "mesh.json"),
                "--dataset",
                "digits",
                "--epochs",
                str(EPOCHS),
                "--seed",
                "3",
                "--out",
                str(out),
                "--config",
                str(mesh.config),
                "--no-baseline",
                "--quiet",
            ],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait("a first field report", lambda: bool(_report_ids(_events(_live_folder(mesh)))), run, log)
        command = _kill_nats(mesh)
        written_before_outage = len(_events(_live_folder(mesh)))
        outage_began = time.monotonic()
        _wait(
            "a field report while NATS is down",
            lambda: bool(_report_ids(_events(_live_folder(mesh))[written_before_outage:])),
            run,
            log,
        )
        time.sleep(max(0.0, MIN_OUTAGE_SECONDS - (time.monotonic() - outage_began)))
        _restart_nats(mesh, command)
        code = run.wait(WAIT_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
        run.wait(30)
    assert code == 0, log.read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == EPOCHS

    events = _events(out)
    reported = _report_ids(events)
    assert len(reported) == len(set(reported)), "the run reported an adaptation twice"
    assert _report_ids(events[:written_before_outage]), "a report was published before the outage"
    assert _report_ids(events[written_before_outage:]), "a report was produced while NATS was down"
    run_id, simic = summary["run_id"], mesh.document()["simic"]["grpc"]
    wait_for_stored_reports(simic, run_id, len(reported), tls=operator_tls(mesh.directory / "mesh.json"))
    # Count only once Simic's consumer has acked every message JetStream holds, including a delivery
    # whose ack the killed server never wrote down: that one comes again after the consumer's ack wait.
    nats_url = mesh.document()["nats"]["url"]
    _bounded(
        "every field report acked by Simic's consumer",
        lambda: _jetstream_view(nats_url)[1] == 0,
        seconds=180.0,
    )
    # Paging one report at a time walks every page of the run's reports.
    stored = stored_report_ids(simic, run_id, page_size=1, tls=operator_tls(mesh.directory / "mesh.json"))
    held = _jetstream_view(nats_url, run_id)[0]
    print(f"field reports: {len(reported)} in the run folder, {len(stored)} at Simic, {held} on JetStream")
    assert len(stored) == len(set(stored)), f"Simic stored a report twice: {sorted(stored)}"
    assert set(stored) == set(reported)

    pids = mesh.pids()
    esper("down", "--dir", str(mesh.directory))
    assert not [name for name, pid in pids.items() if process_alive(pid)]
    assert all(process.poll() is not None for process in mesh.started)
    simic_log = (mesh.directory / "logs" / "simic.log").read_text().splitlines()
    print(next((line for line in reversed(simic_log) if "duplicates dropped" in line), "(no simic status)"))
