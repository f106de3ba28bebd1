"""`esper serve urabrask --urza ADDR`: the UrabraskService server plus the validator loop.

Imported when the CLI parser is built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack, closing

from esper.mesh.target import Served, ServeTarget, thread_task
from esper.trust.flags import add_trusted_signers_argument, trusted_signers
from esper.urabrask.config import UrabraskConfig


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
    from esper.clients import UrzaClient
    from esper.clients.base import ClientConfig
    from esper.leyline.v1.services import URABRASK_SERVICE
    from esper.mesh.hosting import host
    from esper.urabrask.service import UrabraskService
    from esper.urabrask.validator import UrabraskValidator

    config = UrabraskConfig(
        worker_id=args.worker_id,
        poll_interval_seconds=args.poll_interval,
        sandbox_timeout_seconds=args.sandbox_timeout,
    )
    with ExitStack() as opened:
        # Downloads stream whole artifacts: allow them more than a metadata call.
        client = UrzaClient(ClientConfig(address=args.urza, deadline_seconds=60.0, tls=args.client_tls))
        urza = opened.enter_context(closing(client))
        background = []
        if not args.no_validate:
            validator = UrabraskValidator(urza, config, trust=trusted_signers(args))
            background.append(thread_task(validator.run_forever, name="urabrask-validator"))
        return Served.owning(
            opened, registrations=[host(URABRASK_SERVICE.bind(UrabraskService(urza)))], background=background
        )


URABRASK = ServeTarget(
    help="Urabrask: validates compiled kernels and serves their reports (UrabraskService)",
    build=_build,
    add_arguments=_add_arguments,
)
