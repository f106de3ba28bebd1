"""Mission control over HTTP on a loopback port: routes, the JSON state, the event stream, stopping."""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from esper.leyline.v1 import alert_pb2, run_pb2
from esper.nissa.board import RunBoard
from esper.nissa.web import MissionControl, load_static
from esper.oona.envelope import OpenedEnvelope, seal

RUN = "run-http1"
SOCKET_TIMEOUT = 10.0  # a safety net against a hang, not a measured duration


def observe(board: RunBoard, sequence: int, **payload: Any) -> None:
    event = run_pb2.RunEvent(run_id=RUN, sequence=sequence, **payload)
    event.event_time.FromSeconds(1_700_000_000 + sequence)
    board.observe(OpenedEnvelope(seal(event, source="tolaria"), event))


def alert(name: str, severity: int, state: int = alert_pb2.ALERT_STATE_FIRING, start: int = 0) -> alert_pb2.Alert:
    made = alert_pb2.Alert(
        alert_id=f"{name}-1",
        name=name,
        severity=severity,
        state=state,  # type: ignore[arg-type]
        summary=f"{name} summary",
    )
    made.start_time.FromSeconds(1_700_000_000 + start)
    return made


@pytest.fixture
def board() -> RunBoard:
    board = RunBoard()
    observe(board, 1, epoch_completed=run_pb2.EpochMetrics(epoch=0, val_accuracy=0.5, train_accuracy=0.4))
    return board


def start(board: RunBoard, alerts: Callable[[], Sequence[alert_pb2.Alert]] = list) -> tuple[MissionControl, int]:
    mission = MissionControl(board, alerts, refresh_seconds=0.2)
    return mission, mission.start()


@pytest.fixture
def served(board: RunBoard) -> Iterator[int]:
    alerts = [
        alert("oona_queue_depth", alert_pb2.ALERT_SEVERITY_WARNING, start=5),
        alert("old_problem", alert_pb2.ALERT_SEVERITY_CRITICAL, alert_pb2.ALERT_STATE_RESOLVED),
        alert("tamiyo_unavailable", alert_pb2.ALERT_SEVERITY_CRITICAL, start=1),
    ]
    mission, port = start(board, lambda: alerts)
    try:
        yield port
    finally:
        mission.stop()


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_health_and_unknown_paths(served: int) -> None:
    status, _, body = get(served, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, headers, body = get(served, "/../etc/passwd")
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "not found"


def test_the_page_and_its_files_are_served_from_the_package_and_load_nothing_from_elsewhere(served: int) -> None:
    status, headers, page = get(served, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert b'src="/static/app.js"' in page and b'href="/static/style.css"' in page
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        status, headers, body = get(served, path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
    for name, content in load_static().items():
        urls = set(re.findall(rb"https?://[^\s\"')]+", content))
        assert urls <= {b"http://www.w3.org/2000/svg"}, f"{name} refers to {urls}"  # a namespace, never fetched


def test_state_holds_the_runs_and_only_firing_alerts_most_severe_first(served: int) -> None:
    status, headers, body = get(served, "/api/state")
    assert status == 200 and headers["content-type"] == "application/json"
    state = json.loads(body)
    assert [run["run_id"] for run in state["runs"]] == [RUN]
    assert state["runs"][0]["latest"]["val_accuracy"] == 0.5
    assert [(a["name"], a["severity"]) for a in state["alerts"]] == [
        ("tamiyo_unavailable", "CRITICAL"),
        ("oona_queue_depth", "WARNING"),
    ]
    assert state["alerts_error"] is None


def test_a_failing_alert_source_still_shows_the_runs(board: RunBoard) -> None:
    def broken() -> list[alert_pb2.Alert]:
        raise ConnectionError("alert engine down")

    mission, port = start(board, broken)
    try:
        state = json.loads(get(port, "/api/state")[2])
    finally:
        mission.stop()
    assert [run["run_id"] for run in state["runs"]] == [RUN]
    assert state["alerts"] == [] and "alert engine down" in state["alerts_error"]


def read_event(response: http.client.HTTPResponse) -> dict[str, Any]:
    """The next `state` event of the stream (comments and the retry field skipped)."""
    name, data = "", ""
    while True:
        line = response.fp.readline().decode("utf-8")
        if not line:
            raise EOFError("the event stream ended")
        line = line.rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif not line and name == "state":
            parsed: dict[str, Any] = json.loads(data)
            return parsed


def test_the_event_stream_pushes_the_state_when_the_board_changes(board: RunBoard) -> None:
    mission, port = start(board)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT)
    try:
        connection.request("GET", "/api/events")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type", "").startswith("text/event-stream")
        first = read_event(response)
        assert [run["run_id"] for run in first["runs"]] == [RUN] and first["runs"][0]["notices"] == []
        observe(board, 2, notice="seed act1 germinated")
        second = read_event(response)
        assert second["version"] > first["version"]
        assert [n["text"] for n in second["runs"][0]["notices"]] == ["seed act1 germinated"]
        mission.stop()
        with pytest.raises(EOFError):  # stopping ends open streams
            read_event(response)
    finally:
        connection.close()
        mission.stop()
    with pytest.raises(OSError):
        get(port, "/healthz")


def _get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT)
    try:
        headers = {"Host": host} if host is not None else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_request_for_another_host_name_is_refused(board: RunBoard) -> None:
    mission = MissionControl(board, list, allowed_hosts=["mission.example"])
    port = mission.start()
    try:
        assert _get(port, "/healthz", "attacker.example")[0] == 421
        assert _get(port, "/healthz", f"attacker.example:{port}")[0] == 421
        assert _get(port, "/healthz", "")[0] == 421
        for allowed in (f"127.0.0.1:{port}", f"localhost:{port}", "mission.example", f"[::1]:{port}"):
            assert _get(port, "/healthz", allowed)[0] == 200, allowed
    finally:
        mission.stop()


def test_connections_past_the_cap_get_503_and_a_stalled_client_is_dropped(board: RunBoard) -> None:
    mission = MissionControl(
        board, list, refresh_seconds=0.2, keepalive_seconds=0.2, max_connections=2, socket_timeout_seconds=1.0
    )
    port = mission.start()
    streams = [http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT) for _ in range(2)]
    responses = []
    try:
        for stream in streams:
            stream.request("GET", "/api/events")
            responses.append(stream.getresponse())  # kept: a response dropped closes its stream
        assert [response.status for response in responses] == [200, 200]
        assert _get(port, "/healthz")[0] == 503
        for response, stream in zip(responses, streams, strict=True):
            response.close()
            stream.close()
        assert _eventually(lambda: _get(port, "/healthz")[0] == 200)
        # A client that connects and never sends a request loses its connection after the timeout.
        with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as silent:
            assert silent.recv(1) == b""
    finally:
        mission.stop()


def _eventually(check: Callable[[], bool], attempts: int = 50) -> bool:
    """Freed connection slots return as their threads end; poll briefly."""
    import time

    for _ in range(attempts):
        if check():
            return True
        time.sleep(0.1)
    return False
