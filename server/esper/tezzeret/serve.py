"""`esper serve tezzeret --urza ADDR`: the TezzeretService status server plus the compile worker.

The worker runs in its own daemon thread. On SIGTERM the server stops and the worker
is asked to stop after its current job; if a compile is still running when the
grace period ends, the process exits anyway: the write-ahead log makes the next
start resume that job. Imported when the CLI parser is built, so heavy imports
(torch, through the worker) wait for `build`.
"""

from __future__ import annotations

import argparse
import logging
import re
import socket
from contextlib import ExitStack, closing
from pathlib import Path

from esper import pipelines
from esper.errors import UsageError
from esper.home import default_help, state_dir
from esper.leyline.v1 import kernel_pb2
from esper.mesh.target import Served, ServeTarget, thread_task
from esper.trust.flags import add_signing_key_argument, signing_key

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    """Stable across restarts on one host, which is what lets a restarted worker resume its job."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "host"
    return f"tezzeret-{host}"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--urza", required=True, metavar="ADDR", help="Urza's address, host:port")
    parser.add_argument(
        "--worker-id",
        default=None,
        help="worker id, stable across restarts (default: tezzeret-<hostname>)",
    )
    parser.add_argument(
        "--wal-dir",
        type=Path,
        default=None,
        help=f"write-ahead log folder (default: {default_help('tezzeret', 'wal')})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help=f"folder for artifacts waiting to be uploaded (default: {default_help('tezzeret', 'work')})",
    )
    parser.add_argument(
        "--pipelines",
        type=_parse_pipelines,
        default=tuple(pipelines.BY_NAME.values()),
        help="comma-separated pipelines this worker runs (default: fast,standard,aggressive)",
    )
    parser.add_argument(
        "--conservative-threshold",
        type=int,
        default=None,
        help="queue depth above which FAST jobs are taken first (default: TezzeretConfig's)",
    )
    parser.add_argument("--lease-seconds", type=int, default=None, help="compile lease (default: 300)")
    parser.add_argument("--poll-interval", type=float, default=None, help="seconds between empty polls")
    add_signing_key_argument(parser, server="tezzeret")
    parser.add_argument(
        "--fault-exit-after",
        default=None,
        metavar="STAGE",
        help="test and drill facility: exit with status 3 right after this stage of the first job "
        "(claimed, tmp_written, compiled, completed), as a crash would",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.clients import UrzaClient
    from esper.clients.base import ClientConfig
    from esper.leyline.v1.services import TEZZERET_SERVICE
    from esper.mesh.hosting import host
    from esper.tezzeret.config import TezzeretConfig
    from esper.tezzeret.service import TezzeretService
    from esper.tezzeret.worker import TezzeretWorker

    overrides = {
        name: value
        for name, value in (
            ("conservative_queue_threshold", args.conservative_threshold),
            ("lease_seconds", args.lease_seconds),
            ("poll_interval_seconds", args.poll_interval),
            ("fault_exit_after", args.fault_exit_after),
        )
        if value is not None
    }
    try:
        config = TezzeretConfig(
            worker_id=args.worker_id or default_worker_id(),
            wal_dir=args.wal_dir or state_dir("tezzeret") / "wal",
            work_dir=args.work_dir or state_dir("tezzeret") / "work",
            pipelines=args.pipelines,
            **overrides,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with ExitStack() as opened:
        # Uploads carry whole artifacts: allow them more than a metadata call.
        signer = signing_key(args)
        client = UrzaClient(ClientConfig(address=args.urza, deadline_seconds=60.0, tls=args.client_tls))
        urza = opened.enter_context(closing(client))
        worker = TezzeretWorker(urza, config, signer=signer)
        logger.info(
            "Tezzeret worker %s (toolchain %s) compiling for Urza at %s, signing with key %s",
            config.worker_id,
            worker.toolchain[:8],
            args.urza,
            signer.key_id,
        )
        # The worker's log stays locked to the end: its thread may still be inside a compile,
        # and the process exit releases the lock. A compile still running when the grace
        # period ends dies with the process.
        task = thread_task(
            worker.run_forever,
            name="tezzeret-worker",
            on_cancel="stopping during a compile; the write-ahead log resumes the job next start",
        )
        # Its rpcs only copy the worker's state under a short lock: they run on the event loop.
        status = host(TEZZERET_SERVICE.bind(TezzeretService(worker.state)), on_loop=True)
        return Served.owning(opened, registrations=[status], background=[task])


def _parse_pipelines(text: str) -> tuple[kernel_pb2.CompilationPipeline, ...]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in pipelines.BY_NAME]
    if unknown or not names:
        known = ", ".join(pipelines.BY_NAME)
        raise argparse.ArgumentTypeError(f"unknown pipelines {unknown or text!r}; use {known}")
    return tuple(pipelines.BY_NAME[name] for name in names)


TEZZERET = ServeTarget(
    help="Tezzeret: compiles blueprints into kernel artifacts for Urza (TezzeretService status)",
    build=_build,
    add_arguments=_add_arguments,
)
