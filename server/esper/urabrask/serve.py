"""`esper serve urabrask --urza ADDR`: the UrabraskService server plus the validator loop.

Imported when the CLI parser is built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

from esper.cli.serve import Served, ServeTarget
from esper.mesh.server import BackgroundTask
from esper.trust.flags import add_trusted_signers_argument, trusted_signers
from esper.urabrask.config import UrabraskConfig

if TYPE_CHECKING:
    from esper.urabrask.validator import UrabraskValidator


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = UrabraskConfig()
    parser.add_argument("--urza", required=True, metavar="ADDR", help="Urza's address, host:port")
    parser.add_argument("--worker-id", default=defaults.worker_id, help=f"validator id (default: {defaults.worker_id})")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=defaults.poll_interval_seconds,
        help=f"seconds between polls when no kernel waits (default: {defaults.poll_interval_seconds:g})",
    )
    parser.add_argument(
        "--sandbox-timeout",
        type=float,
        default=defaults.sandbox_timeout_seconds,
        help=f"seconds one kernel's sandbox may run (default: {defaults.sandbox_timeout_seconds:g})",
    )
    add_trusted_signers_argument(parser, role="may run in the sandbox")
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="serve reports only; run no validator loop",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.clients.base import ClientConfig
    from esper.clients.urza import UrzaClient
    from esper.urabrask.service import UrabraskService
    from esper.urabrask.servicer import urabrask_registration
    from esper.urabrask.validator import UrabraskValidator

    config = UrabraskConfig(
        worker_id=args.worker_id,
        poll_interval_seconds=args.poll_interval,
        sandbox_timeout_seconds=args.sandbox_timeout,
    )
    # Downloads stream whole artifacts: allow them more than a metadata call.
    urza = UrzaClient(ClientConfig(address=args.urza, deadline_seconds=60.0, tls=args.client_tls))
    trust = trusted_signers(args)
    background = [] if args.no_validate else [_validator_task(UrabraskValidator(urza, config, trust=trust))]
    return Served(
        registrations=[urabrask_registration(UrabraskService(urza))],
        background=background,
        close=urza.close,
    )


def _validator_task(validator: UrabraskValidator) -> BackgroundTask:
    """A background task running the validator's blocking loop in a thread until the server stops."""

    async def run(stopping: asyncio.Event) -> None:
        stop = threading.Event()
        loop_done = asyncio.ensure_future(asyncio.to_thread(validator.run_forever, stop))
        stop_requested = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({loop_done, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            stop_requested.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_requested
        await loop_done

    return run


URABRASK = ServeTarget(
    help="Urabrask: validates compiled kernels and serves their reports (UrabraskService)",
    build=_build,
    add_arguments=_add_arguments,
)
