"""`esper serve NAME`: run one subsystem as its own gRPC server.

Each servable subsystem's `serve` module defines a `ServeTarget` (esper.mesh.target):
its help line, the flags it adds to `esper serve NAME`, and a `build(args)` that
returns the services to host (plus any background tasks, e.g. a bus consumer). A
subsystem joins with one entry in SERVE_TARGETS.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from esper.cli.common import process_tracing
from esper.errors import UsageError
from esper.karn.serve import KARN
from esper.mesh.flags import add_server_arguments, server_config
from esper.mesh.server import serve_forever
from esper.mesh.target import ServeTarget
from esper.nissa.serve import NISSA
from esper.simic.serve import SIMIC
from esper.tamiyo.serve import TAMIYO
from esper.tezzeret.serve import TEZZERET
from esper.tolaria.serve import TOLARIA
from esper.urabrask.serve import URABRASK
from esper.urza.serve import URZA

# NAME -> its ServeTarget, in help order.
SERVE_TARGETS: Mapping[str, ServeTarget] = MappingProxyType(
    {
        "karn": KARN,
        "urabrask": URABRASK,
        "urza": URZA,
        "tezzeret": TEZZERET,
        "tamiyo": TAMIYO,
        "simic": SIMIC,
        "nissa": NISSA,
        "tolaria": TOLARIA,
    }
)


def register(subparsers: Any) -> None:
    """Add `esper serve NAME` with the common server flags and each subsystem's own."""
    common = argparse.ArgumentParser(add_help=False)
    add_server_arguments(common)
    serve = subparsers.add_parser(
        "serve",
        help="run one subsystem as a gRPC server",
        description="Run one subsystem as a gRPC server (with health and reflection) until SIGTERM/SIGINT.",
    )
    names = serve.add_subparsers(dest="serve_name", metavar="NAME", title="subsystems")
    names.required = True
    for name, target in SERVE_TARGETS.items():
        parser = names.add_parser(name, parents=[common], help=target.help, description=target.help)
        target.add_arguments(parser)
        parser.set_defaults(handler=_serve, serve_target=target, client_tls=None)


def _serve(args: argparse.Namespace) -> int:
    target: ServeTarget = args.serve_target
    if args.no_metrics and args.metrics_port_file is not None:
        raise UsageError("--metrics-port-file: there is no /metrics endpoint with --no-metrics")
    config = server_config(args.serve_name, args)
    # The server's own calls to other servers (Urza, Tamiyo) go out as the same identity.
    args.client_tls = config.tls
    # Spans go where OTEL_* says (`esper up` points them at Nissa); the queue is flushed on the way out.
    with process_tracing(args.serve_name):
        served = target.build(args)
        try:
            asyncio.run(
                serve_forever(
                    config,
                    served.registrations,
                    args.port_file,
                    background=served.background,
                    metrics_port_file=args.metrics_port_file,
                )
            )
        finally:
            if served.close is not None:
                served.close()
    return 0
