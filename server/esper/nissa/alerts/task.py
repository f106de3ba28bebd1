"""The alert loop as a server background task: scrape and evaluate every interval until the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from esper import checks
from esper.nissa.alerts.engine import AlertEngine

if TYPE_CHECKING:
    # Only the type: importing esper.mesh.server would pull grpc into domain code.
    from esper.mesh.server import BackgroundTask

logger = logging.getLogger(__name__)


def alert_task(engine: AlertEngine, interval_seconds: float | None = None) -> BackgroundTask:
    """A BackgroundTask running `engine.scrape_and_evaluate` every interval (default: the engine's config).

    Each cycle runs in a worker thread, so slow or hanging targets never block the
    server's event loop; a cycle that fails is logged and the next one runs as usual.
    """
    interval = engine.config.evaluation_interval_seconds if interval_seconds is None else interval_seconds
    checks.positive("interval_seconds", interval)

    async def evaluate_alerts(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.to_thread(engine.scrape_and_evaluate)
            except Exception:
                logger.exception("alert evaluation failed; trying again in %.1f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=interval)

    return evaluate_alerts
