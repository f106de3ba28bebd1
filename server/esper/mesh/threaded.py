"""A gRPC server on its own event loop in a background thread.

For callers that are synchronous (tests, benchmarks, a training process hosting a
service): they start a real grpc.aio server and talk to it with the ordinary sync
clients without blocking it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from esper.mesh.config import ServerConfig
from esper.mesh.server import RunningServer, ServiceRegistration, start_server

T = TypeVar("T")

_START_TIMEOUT_SECONDS = 30.0


class ServerThread:
    """A started server on 127.0.0.1:<free port>, served from a background thread."""

    def __init__(self, registrations: Sequence[ServiceRegistration], config: ServerConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-server", daemon=True)
        self._thread.start()
        self._running: RunningServer = self.run(start_server(config, registrations))
        self._stopped = False

    @property
    def port(self) -> int:
        return self._running.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> RunningServer:
        return self._running

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT_SECONDS)

    def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop the server (health NOT_SERVING first) and its loop; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.run(self._running.stop(grace_seconds))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_TIMEOUT_SECONDS)
            self._loop.close()
