"""Run what `esper serve NAME` builds inside the test process: its rpcs on a real server on port 0,
its background tasks (bus consumers) on an event loop of their own, `close` at the end."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from esper.mesh.config import ServerConfig
from esper.mesh.target import Served
from tests.support.servers import ServerThread

_TIMEOUT_SECONDS = 30.0


class RunningServed:
    def __init__(self, served: Served, name: str) -> None:
        self._served = served
        self.server = ServerThread(served.registrations, ServerConfig(service_name=name, grace_seconds=0.0))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-background", daemon=True)
        self._thread.start()
        self._stopping = asyncio.Event()
        self._tasks: list[concurrent.futures.Future[None]] = [
            asyncio.run_coroutine_threadsafe(task(self._stopping), self._loop) for task in served.background
        ]
        self._stopped = False

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self) -> None:
        """Stop like `esper serve` does: rpcs, then background tasks, then `close` (which flushes the bus)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.server.stop()
            self._loop.call_soon_threadsafe(self._stopping.set)
            for task in self._tasks:
                task.result(_TIMEOUT_SECONDS)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_TIMEOUT_SECONDS)
            if self._served.close is not None:
                self._served.close()
