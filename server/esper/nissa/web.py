"""Mission control: Nissa's web page of live runs, served by the standard library's HTTP server.

Routes (GET): `/` the page, `/static/app.js` and `/static/style.css` its script and
style (shipped in the package; the page loads nothing from elsewhere), `/api/state`
the board's snapshot plus the firing alerts as JSON, `/api/events` the same JSON as
Server-Sent Events (`event: state`) each time it changes, `/healthz`. Anything
else is a JSON 404. The server runs in a daemon thread; `stop()` ends it and every
open event stream within `refresh_seconds`.

It is bounded like the gRPC servers: at most `max_connections` at once (more get a
503 and are closed), every socket read and write times out after
`socket_timeout_seconds` (a stalled client loses its connection, not a thread for
ever), and a request whose Host header is not an allowed name gets a 421, so a
page elsewhere cannot reach it by rebinding a name of its own to this address.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from esper import checks
from esper.leyline.v1 import alert_pb2
from esper.nissa.board import RunBoard
from esper.nissa.board_view import alert_view

logger = logging.getLogger(__name__)

AlertFeed = Callable[[], Sequence[alert_pb2.Alert]]

# Path -> (file in static/, content type). A fixed list: no path from a request reaches the file system.
STATIC_FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Only this origin: the page can fetch, script and style nothing from anywhere else.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SEVERITY_ORDER = {alert_pb2.ALERT_SEVERITY_CRITICAL: 0, alert_pb2.ALERT_SEVERITY_WARNING: 1}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n"


def load_static() -> dict[str, bytes]:
    """The page's files, read once from the package."""
    folder = importlib.resources.files(__package__ or "esper.nissa").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name, _ in set(STATIC_FILES.values())}


class MissionControl:
    """The mission-control web server over a run board and a source of alerts."""

    def __init__(
        self,
        board: RunBoard,
        alerts: AlertFeed,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        refresh_seconds: float = 1.0,
        keepalive_seconds: float = 15.0,
        max_connections: int = 32,
        socket_timeout_seconds: float = 30.0,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        checks.positive("refresh_seconds", refresh_seconds)
        checks.positive("keepalive_seconds", keepalive_seconds)
        checks.positive("max_connections", max_connections)
        checks.positive("socket_timeout_seconds", socket_timeout_seconds)
        self.max_connections = max_connections
        self.socket_timeout_seconds = socket_timeout_seconds
        self.allowed_hosts = frozenset(
            name.lower() for name in (*LOOPBACK_NAMES, *allowed_hosts, host) if name not in ("", "0.0.0.0", "::")
        )
        self.board = board
        self._alerts = alerts
        self._address = (host, port)
        self.refresh_seconds = refresh_seconds
        self.keepalive_seconds = keepalive_seconds
        self.files = load_static()
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind and serve in a daemon thread; the bound port."""
        if self._server is not None:
            raise RuntimeError("mission control is already started")
        server = _Server(self._address, _Handler)
        server.mission = self
        server.slots = threading.BoundedSemaphore(self.max_connections)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.25}, name="nissa-mission-control", daemon=True
        )
        self._thread.start()
        port = int(server.server_address[1])
        logger.info("mission control on http://%s:%d/", self._address[0], port)
        return port

    def stop(self) -> None:
        """Stop serving; open event streams end within `refresh_seconds`."""
        self.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def state(self) -> dict[str, Any]:
        """The board's snapshot plus the firing alerts, most severe and newest first."""
        state = self.board.snapshot()
        try:
            firing = [a for a in self._alerts() if a.state == alert_pb2.ALERT_STATE_FIRING]
            firing.sort(key=lambda a: (_SEVERITY_ORDER.get(a.severity, 2), -a.start_time.seconds, a.name))
            state["alerts"] = [alert_view(alert) for alert in firing]
            state["alerts_error"] = None
        except Exception as exc:  # the page still shows the runs when the alert engine fails
            logger.warning("mission control: alerts unavailable: %s", exc)
            state["alerts"], state["alerts_error"] = [], f"alerts unavailable: {exc}"
        return state


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mission: MissionControl
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            # Full: answer at once and close, without a thread of its own.
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "EsperNissa"

    def setup(self) -> None:
        super().setup()
        # Every later read and write of this connection times out (what `timeout` would set, per server).
        self.connection.settimeout(self.server.mission.socket_timeout_seconds)

    def do_GET(self) -> None:
        mission = self.server.mission
        if not self._host_allowed(mission):
            self._send_json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unknown host"})
            return
        path = self.path.split("?", 1)[0]
        if path in STATIC_FILES:
            name, content_type = STATIC_FILES[path]
            self._send(HTTPStatus.OK, mission.files[name], content_type)
        elif path == "/api/state":
            self._send_json(HTTPStatus.OK, mission.state())
        elif path == "/api/events":
            self._stream_events(mission)
        elif path == "/healthz":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found", "path": path})

    def do_POST(self) -> None:
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed", "method": "POST"})

    def _host_allowed(self, mission: MissionControl) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
        return name in mission.allowed_hosts

    def _stream_events(self, mission: MissionControl) -> None:
        """Server-Sent Events: the state each time it changes, a comment now and then to keep proxies open."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        sent, version, quiet_since = "", -1, time.monotonic()
        try:
            self._write(b"retry: 2000\n\n")
            while not mission.stopping.is_set():
                state = mission.state()
                now = state.pop("time", None)
                compared = _dumps(state)  # without the clock, which changes every time
                if compared != sent:
                    state["time"] = now
                    self._write(f"event: state\ndata: {_dumps(state)}\n\n".encode())
                    sent, quiet_since = compared, time.monotonic()
                elif time.monotonic() - quiet_since >= mission.keepalive_seconds:
                    self._write(b": keepalive\n\n")
                    quiet_since = time.monotonic()
                # Alerts change without the board changing, so the state is also re-read on a timer.
                version = mission.board.wait_for_change(version, mission.refresh_seconds)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            logger.debug("mission control: event stream closed by %s", self.client_address[0])

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _send_json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, _dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("mission control: %s %s", self.address_string(), format % args)


def _dumps(body: dict[str, Any]) -> str:
    # One line (an SSE data field cannot hold a newline); NaN would not be JSON.
    return json.dumps(body, separators=(",", ":"), allow_nan=False)
