"""What `esper serve NAME` runs: a subsystem's `ServeTarget` and what its build returns.

A subsystem's `serve` module defines one `ServeTarget`: its help line, the flags it
adds to `esper serve NAME`, and `build(args)` returning `Served` (the services to
host, background tasks such as a bus consumer, and what to close once the server
has stopped). The module is imported when the CLI parser is built, so it stays
cheap to import: heavy imports wait for `build`.

`build` opens resources inside an ExitStack and hands it over with `Served.owning`:
if anything fails half-way, what was already opened is closed at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from esper.mesh.server import BackgroundTask, ServiceRegistration

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """What one `esper serve NAME` hosts. `close` runs after the server has stopped."""

    registrations: Sequence[ServiceRegistration]
    background: Sequence[BackgroundTask] = ()
    close: Callable[[], None] | None = None

    @classmethod
    def owning(
        cls,
        opened: ExitStack,
        registrations: Sequence[ServiceRegistration],
        background: Sequence[BackgroundTask] = (),
    ) -> Served:
        """Served that closes everything `opened` holds (last opened first) when the server stops.

        Call it as the last step inside `with ExitStack() as opened:`; the stack's
        resources then belong to the Served, not to the `with`.
        """
        return cls(registrations=registrations, background=background, close=opened.pop_all().close)


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class ServeTarget:
    """A subsystem `esper serve` can run."""

    help: str
    build: Callable[[argparse.Namespace], Served]
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=_no_arguments)


def thread_task(run: Callable[[threading.Event], None], *, name: str, on_cancel: str = "") -> BackgroundTask:
    """A background task running the blocking loop `run(stop)` in a daemon thread until the server stops.

    When the server stops, `stop` is set and the task waits for the loop to return.
    If the server's grace period ends first the task is cancelled; the daemon thread
    then dies with the process (`on_cancel` is logged, e.g. how the work resumes). A
    loop that raises stops the server with its error.
    """

    async def task(stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()

        def work() -> None:
            try:
                run(stop)
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, finished, exc)
            else:
                loop.call_soon_threadsafe(_settle, finished, None)

        threading.Thread(target=work, name=name, daemon=True).start()
        stop_requested: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({finished, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            stop_requested.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_requested
        try:
            await finished
        except asyncio.CancelledError:
            if on_cancel:
                logger.warning("%s", on_cancel)
            raise

    return task


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
