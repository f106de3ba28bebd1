"""Mission control in headless Chromium, showing a real run.

A short embedded training run publishes its seed telemetry and run events through
Tolaria's real bus publisher onto an in-process Oona; the run board follows them
through its durable consumer; mission control serves the page; Chromium renders
it (screenshot) and dumps the DOM after the page's script ran.

The page follows Server-Sent Events by default. Chromium's --virtual-time-budget
waits for pending fetches, which a held-open event stream never finishes, so the
page is opened with ?transport=poll (its polling fallback); the event stream is
tested over HTTP in test_mission_control_http.py.
"""

from __future__ import annotations

import dataclasses
import html
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from esper.config import EsperConfig, config_from_dict
from esper.leyline.v1 import alert_pb2, run_pb2
from esper.nissa.board import RunBoard, board_intake
from esper.nissa.web import MissionControl
from esper.oona.config import OonaConfig
from esper.oona.memory import InProcessBus
from esper.tolaria.collaborators import RunCollaborators, embedded_collaborators
from esper.tolaria.events import RunEventLog
from esper.tolaria.mesh_collaborators import BoundaryPublisher
from esper.tolaria.session import run_training

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
RUN_ID = "run-mission1"
CHROMIUM_TIMEOUT_SECONDS = 90
# The page's colours for the validation curve (light and dark scheme).
CURVE_COLOURS = ((0x1F, 0x7F, 0xB0), (0x4F, 0xB3, 0xD9))


def _fast_config(tmp_path: Path) -> EsperConfig:
    """One template, a short lifecycle and an eager Tamiyo, so 10 epochs see seeds fossilize."""
    return config_from_dict(
        {
            "run": {"dataset": "digits", "epochs": 10, "seed": 3, "out": str(tmp_path / "run")},
            "assets": {
                "data_dir": str(tmp_path / "assets"),
                "template_ids": ["conv3x3_relu"],
                "pipelines": ["fast"],
                "compile_workers": 2,
                # Seeds must fossilize within 10 epochs: wait for the kernel (the deterministic mode).
                "wait_for_kernels": True,
            },
            "kasmina": {
                "ramp_steps": 10,
                "training_min_steps": 5,
                "stabilization_steps": 5,
                "fine_tuning_min_steps": 5,
            },
            "tamiyo": {
                "warmup_epochs": 1,
                "patience": 1,
                "min_delta": 0.5,
                "min_epochs_to_finish": 1,
                "min_eval_gain": -1.0,
                "fossilize_min_improvement": 0.0,
                "harm_threshold": 1.0,
            },
        }
    )


def _firing_alert() -> alert_pb2.Alert:
    alert = alert_pb2.Alert(
        alert_id="training_latency_high-1",
        name="training_latency_high",
        severity=alert_pb2.ALERT_SEVERITY_WARNING,
        state=alert_pb2.ALERT_STATE_FIRING,
        summary="p95 epoch-end hook 0.031 s > 0.018 s",
        labels={"job": "tolaria"},
        value=0.031,
        threshold=0.018,
    )
    alert.start_time.GetCurrentTime()
    return alert


@pytest.fixture(scope="module")
def board_of_a_real_run(tmp_path_factory: pytest.TempPathFactory) -> RunBoard:
    """A board that followed one real training run over Oona."""
    tmp_path = tmp_path_factory.mktemp("mission-run")
    bus = InProcessBus(OonaConfig())
    board = RunBoard()
    subscription = board_intake(board)(bus)
    publisher = BoundaryPublisher(bus)

    def services(config: EsperConfig) -> RunCollaborators:
        # The embedded run, publishing what a Tolaria server publishes on the mesh.
        return dataclasses.replace(embedded_collaborators(config), publish=publisher, publish_event=publisher.event)

    events = RunEventLog(RUN_ID)
    try:
        run_training(_fast_config(tmp_path), run_id=RUN_ID, collaborators=services, events=events)
        # As the Tolaria server ends a run: a closed log still hands events to its sinks.
        events.emit(status_change=run_pb2.RUN_STATUS_SUCCEEDED)
        assert bus.flush(30)
    finally:
        subscription.stop()
        bus.close()
    return board


@pytest.fixture
def mission_control(board_of_a_real_run: RunBoard) -> Iterator[int]:
    alert = _firing_alert()
    mission = MissionControl(board_of_a_real_run, lambda: [alert])
    port = mission.start()
    try:
        yield port
    finally:
        mission.stop()


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
        *args,
        url,
    ]
    # Its own process group, so that on a hang the browser and its helpers are stopped together.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT_SECONDS} s: {' '.join(command)}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _expected_texts(board: RunBoard) -> dict[str, str]:
    """What the page must show, taken from the board (the page formats as app.js does)."""
    run: dict[str, Any] = board.snapshot()["runs"][0]
    seed = next(s for layer in run["layers"] for s in layer["seeds"] if s["stage"] == "FOSSILIZED")
    return {
        "run id": RUN_ID,
        "validation accuracy": f"{100 * run['latest']['val_accuracy']:.1f} %",
        "seed stage": seed["stage"],
        "seed alpha": f"{seed['alpha']:.2f}",
        "seed id": seed["seed_id"],
        "decision reason": html.escape(run["decisions"][0]["reason"], quote=False),
        "firing alert": "training_latency_high",
        "run status": "SUCCEEDED",
    }


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package chromium)")
def test_the_page_shows_the_real_run_live(board_of_a_real_run: RunBoard, mission_control: int, tmp_path: Path) -> None:
    run = board_of_a_real_run.snapshot()["runs"][0]
    assert run["run_id"] == RUN_ID and run["epochs_seen"] == 10 and run["counts"].get("fossilized", 0) >= 1
    url = f"http://127.0.0.1:{mission_control}/?transport=poll"

    dumped = _chromium(tmp_path, url, "--dump-dom")
    dom = dumped.stdout.decode("utf-8")
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    for what, text in _expected_texts(board_of_a_real_run).items():
        assert text in dom, f"the rendered page does not show the {what} {text!r}"
    assert "Waiting for a run" not in dom  # the script replaced the placeholder

    shot = tmp_path / "shot.png"
    taken = _chromium(tmp_path, url, f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr.decode(errors="replace")[-2000:]
    _assert_screenshot_shows_the_page(shot)


def _assert_screenshot_shows_the_page(shot: Path) -> None:
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    image_module = pytest.importorskip("PIL.Image")
    with image_module.open(shot) as opened:
        image = opened.convert("RGB")
    assert image.size == (1280, 900)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200, "the screenshot is (nearly) blank"
    curve_pixels = sum(
        count
        for count, colour in colours
        if any(sum(abs(a - b) for a, b in zip(colour, curve, strict=True)) < 30 for curve in CURVE_COLOURS)
    )
    assert curve_pixels > 500, "no accuracy curve drawn"
