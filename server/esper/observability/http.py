"""The Prometheus endpoint of one process: GET /metrics from a daemon thread, 404 for any other path.

A stdlib ThreadingHTTPServer we control rather than prometheus_client's own, which
answers every path with the metrics: an address that answers "/" with metrics hides a
wrong scrape configuration.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from esper.errors import Unavailable
from esper.observability.metrics import exposition

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
_POLL_SECONDS = 0.05


class _MetricsHandler(BaseHTTPRequestHandler):
    server_version = "esper-metrics"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != METRICS_PATH:
            self._answer(404, b"not found: metrics are at /metrics\n", "text/plain; charset=utf-8")
            return
        try:
            body = exposition()
        except Exception:  # a broken collector must not kill the endpoint
            logger.exception("rendering /metrics failed")
            self._answer(500, b"metrics could not be rendered\n", "text/plain; charset=utf-8")
            return
        self._answer(200, body, CONTENT_TYPE_PLAIN_0_0_4)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("metrics %s: " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family: ClassVar[socket.AddressFamily] = socket.AF_INET6  # type: ignore[misc]


@dataclass
class MetricsServer:
    """A running /metrics endpoint: where it listens, and `stop()`."""

    host: str
    port: int
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def stop(self) -> None:
        """Stop answering and close the socket; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5.0)
        self._server.server_close()


def start_metrics_server(host: str, port: int) -> MetricsServer:
    """Serve the process-wide registry on host:port (0 = a free port); Unavailable if it cannot bind."""
    bare = host.strip("[]")
    server_class = _Server6 if ":" in bare else _Server
    try:
        server = server_class((bare, port), _MetricsHandler)
    except OSError as exc:
        raise Unavailable(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    # The poll interval bounds how long stop() waits for the serving loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(_POLL_SECONDS,), name="esper-metrics", daemon=True)
    thread.start()
    bound = int(server.server_address[1])
    logger.info("metrics on http://%s:%d%s", host, bound, METRICS_PATH)
    return MetricsServer(bare, bound, server, thread)
