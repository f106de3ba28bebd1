"""Oona for `esper serve NAME`: the `--nats` flags, opening the bus, and consumers as background tasks.

A server started with `--nats URL` connects to NATS JetStream when it is built
(an unreachable NATS is an error at start, naming the URL), starts its consumers
once it is serving, stops them when it stops, and closes the bus last. Without
`--nats` it serves its rpcs only. Imported when the CLI parser is built, so
nats-py waits for `open_bus`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from esper.errors import UsageError

if TYPE_CHECKING:
    from esper.mesh.server import BackgroundTask
    from esper.oona.api import Bus, Subscription
    from esper.oona.config import OonaConfig
    from esper.oona.jetstream import JetStreamBus

logger = logging.getLogger(__name__)

DEFAULT_STATUS_SECONDS = 60.0


def add_bus_arguments(parser: argparse.ArgumentParser, *, role: str) -> None:
    """`--nats URL` (what the server does on the bus is `role`) and the envelope signing flags."""
    parser.add_argument("--nats", default=None, metavar="URL", help=f"NATS JetStream URL: {role}")
    parser.add_argument(
        "--bus-secret-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="shared HMAC secret (at least 16 bytes) that signs and verifies bus envelopes (default: unsigned)",
    )
    parser.add_argument("--bus-key-id", default="", metavar="ID", help="id of that secret (default: empty)")


def bus_config(args: argparse.Namespace, client_name: str) -> OonaConfig | None:
    """The bus the flags ask for, or None without --nats; a bad flag is a UsageError naming it."""
    from esper.oona.config import OonaConfig

    if not args.nats:
        if args.bus_secret_file is not None:
            raise UsageError("--bus-secret-file needs --nats")
        return None
    secret = None
    if args.bus_secret_file is not None:
        try:
            secret = args.bus_secret_file.read_bytes().strip()
        except OSError as error:
            raise UsageError(f"--bus-secret-file: cannot read {args.bus_secret_file}: {error}") from None
    try:
        return OonaConfig(url=args.nats, client_name=client_name, hmac_secret=secret, hmac_key_id=args.bus_key_id)
    except ValueError as error:
        raise UsageError(f"--nats/--bus-secret-file: {error}") from None


def open_bus(config: OonaConfig) -> JetStreamBus:
    """A started JetStreamBus; Unavailable if NATS does not answer in time."""
    from esper.oona.jetstream import JetStreamBus

    bus = JetStreamBus(config).start()
    logger.info("on NATS JetStream at %s as %s", config.url, config.client_name)
    return bus


def consumer_task(
    bus: Bus,
    subscribe: Callable[[Bus], Subscription],
    *,
    status: Callable[[], str] | None = None,
    status_seconds: float = DEFAULT_STATUS_SECONDS,
) -> BackgroundTask:
    """Subscribe once the server serves; log `status()` when it changes; unsubscribe when the server stops."""

    async def run(stopping: asyncio.Event) -> None:
        subscription = await asyncio.to_thread(subscribe, bus)
        last = ""
        try:
            while not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), status_seconds)
                if status is not None and not stopping.is_set():
                    line = await asyncio.to_thread(status)
                    if line != last:
                        logger.info("%s", line)
                        last = line
        finally:
            await asyncio.to_thread(subscription.stop)

    return run
