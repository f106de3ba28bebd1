"""`esper serve tolaria`: the TolariaService server, with KasminaService for the runs it trains.

Runs train in this process. With --urza and --tamiyo (or --mesh FILE naming them)
they take kernels from that Urza and decisions from that Tamiyo, and with --nats
they publish seed telemetry and field reports on Oona; with neither, every run
wires its subsystems in-process like `esper run`. Imported when the CLI parser is
built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from esper.errors import UsageError
from esper.home import default_help, state_dir
from esper.mesh.flags import positive_float, positive_int
from esper.mesh.target import Served, ServeTarget
from esper.oona.flags import add_bus_arguments, bus_config, open_bus
from esper.trust.flags import add_trusted_signers_argument, trusted_signers

if TYPE_CHECKING:
    from esper.mesh.addresses import MeshAddresses
    from esper.tolaria.mesh_collaborators import MeshCollaborators

logger = logging.getLogger(__name__)

STREAM_WORKERS = 64


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mesh",
        metavar="FILE",
        default=None,
        help="mesh.json naming urza, tamiyo and nats (flags below take precedence)",
    )
    parser.add_argument("--urza", metavar="ADDR", default=None, help="Urza's address, host:port")
    parser.add_argument("--tamiyo", metavar="ADDR", default=None, help="Tamiyo's address, host:port")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help=f"where runs created without a folder go (default: {default_help('tolaria', 'runs')})",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="where npz: datasets may be read from (default: none; npz: datasets are refused)",
    )
    parser.add_argument(
        "--assets-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="where embedded runs keep their kernel caches (default: beside --runs-dir; unused with a mesh's Urza)",
    )
    parser.add_argument(
        "--max-pending-runs",
        type=positive_int,
        default=16,
        help="runs that may wait for a training slot; more are refused (default: 16)",
    )
    parser.add_argument(
        "--max-concurrent-runs",
        type=positive_int,
        default=1,
        help="runs training at once; later ones wait PENDING (default: 1)",
    )
    add_bus_arguments(parser, role="publish seed telemetry and field reports")
    add_trusted_signers_argument(parser, role="runs may graft (mesh runs)")
    parser.add_argument(
        "--tamiyo-step-deadline",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="deadline of one epoch-end Step, tried once (default: 0.25)",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.leyline.v1.services import KASMINA_SERVICE, TOLARIA_SERVICE
    from esper.mesh.hosting import host
    from esper.tolaria.collaborators import CollaboratorsFactory, embedded_collaborators
    from esper.tolaria.config import RunManagerConfig
    from esper.tolaria.kasmina_router import KasminaRouter
    from esper.tolaria.runs import RunManager

    addresses = _addresses(args)
    with ExitStack() as opened:
        mesh = None
        collaborators: CollaboratorsFactory = embedded_collaborators
        if addresses is not None:
            mesh = _mesh_collaborators(args, addresses)
            opened.callback(mesh.close)
            collaborators = mesh
        router = KasminaRouter()
        runs_dir = (args.runs_dir or state_dir("tolaria") / "runs").expanduser().resolve()
        assets_root = None
        if mesh is None:
            assets_root = (args.assets_root or runs_dir.parent / "assets").expanduser().resolve()
        manager = RunManager(
            RunManagerConfig(
                runs_dir=runs_dir,
                max_concurrent_runs=args.max_concurrent_runs,
                max_pending_runs=args.max_pending_runs,
                data_root=args.data_root.expanduser().resolve() if args.data_root else None,
                assets_root=assets_root,
            ),
            collaborators,
            kasmina=router,
        )
        opened.callback(manager.close)
        logger.info(
            "Tolaria: runs %s, folders under %s",
            mesh.description if mesh is not None else "embedded",
            manager.config.runs_dir,
        )
        # An event stream waits in a thread of its own pool for the run's next event (an epoch can
        # take minutes), so open streams never take the threads that unary calls need.
        streams = ThreadPoolExecutor(max_workers=STREAM_WORKERS, thread_name_prefix="run-events")
        opened.callback(streams.shutdown, wait=False, cancel_futures=True)
        registrations = [
            host(TOLARIA_SERVICE.bind(manager), executors={"StreamRunEvents": streams}),
            # Seed commands take the operator's lock, which training holds at epoch boundaries.
            host(KASMINA_SERVICE.bind(router)),
        ]
        return Served.owning(opened, registrations=registrations)


def _addresses(args: argparse.Namespace) -> MeshAddresses | None:
    from esper.mesh.addresses import MeshAddresses, load_mesh

    base = load_mesh(args.mesh) if args.mesh else MeshAddresses()
    grpc = dict(base.grpc)
    for name in ("urza", "tamiyo"):
        if getattr(args, name):
            grpc[name] = getattr(args, name)
    nats = args.nats or base.nats_url
    given = [name for name in ("urza", "tamiyo") if name in grpc]
    if not given and not nats:
        return None
    if len(given) < 2:
        missing = {"urza", "tamiyo"} - set(given)
        raise UsageError(f"a mesh run needs both --urza and --tamiyo; missing --{missing.pop()}")
    return MeshAddresses(grpc=grpc, nats_url=nats)


def _mesh_collaborators(args: argparse.Namespace, addresses: MeshAddresses) -> MeshCollaborators:
    from esper.tolaria.config import MeshCollaboratorsConfig
    from esper.tolaria.mesh_collaborators import mesh_collaborators

    settings = MeshCollaboratorsConfig()
    if args.tamiyo_step_deadline is not None:
        settings = MeshCollaboratorsConfig(tamiyo_step_deadline_seconds=args.tamiyo_step_deadline)
    bus = None
    if addresses.nats_url:
        args.nats = addresses.nats_url
        oona = bus_config(args, "tolaria")
        bus = open_bus(oona) if oona is not None else None
    return mesh_collaborators(addresses, settings, bus=bus, trust=trusted_signers(args), tls=args.client_tls)


TOLARIA = ServeTarget(
    help="Tolaria: trains runs (TolariaService) and serves their seeds (KasminaService)",
    build=_build,
    add_arguments=_add_arguments,
)
