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
    parser.add_argument(
        "--bus-state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where each consumer records the messages it handled, so a replay is refused after a restart "
        "(default: in memory only)",
    )
    parser.add_argument(
        "--bus-max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="signed envelopes published further than this from when they were stored are dead-lettered (default: 300)",
    )


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
    state_dir = args.bus_state_dir.expanduser() / client_name if args.bus_state_dir is not None else None
    tls = _nats_tls(args)
    try:
        return OonaConfig(
            url=args.nats,
            client_name=client_name,
            hmac_secret=secret,
            hmac_key_id=args.bus_key_id,
            state_dir=str(state_dir) if state_dir is not None else None,
            max_age_seconds=args.bus_max_age if args.bus_max_age is not None else OonaConfig.max_age_seconds,
            tls_ca=tls.get("tls_ca"),
            tls_cert=tls.get("tls_cert"),
            tls_key=tls.get("tls_key"),
        )
    except ValueError as error:
        raise UsageError(f"--nats/--bus-secret-file/--bus-max-age: {error}") from None


def _nats_tls(args: argparse.Namespace) -> dict[str, str]:
    """A `tls://` NATS is reached as the server's own identity (its --tls-* files)."""
    if not str(args.nats).startswith("tls://"):
        return {}
    files = {"tls_ca": getattr(args, "tls_ca", None), "tls_cert": getattr(args, "tls_cert", None)}
    files["tls_key"] = getattr(args, "tls_key", None)
    if files["tls_ca"] is None:
        raise UsageError("--nats tls://...: the server needs --tls-ca (and --tls-cert/--tls-key) to reach it")
    return {name: str(path) for name, path in files.items() if path is not None}


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
