"""`esper serve NAME`: run one subsystem as its own gRPC server.

Each servable subsystem is a `ServeTarget`: its help line, the flags it adds to
`esper serve NAME`, and a `build(args)` that returns the services to host (plus
any background tasks, e.g. a bus consumer). A subsystem joins with one entry in
SERVE_TARGETS naming where its target lives; that module is imported when the
parser is built, so it must stay cheap to import (import heavy things in `build`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esper.cli.bus import add_bus_arguments, bus_config, consumer_task, open_bus
from esper.cli.common import UsageError, process_tracing
from esper.mesh.config import ServerConfig
from esper.mesh.server import BackgroundTask, ServiceRegistration, serve_forever
from esper.trust.identity import TlsFiles, TlsIdentity

if TYPE_CHECKING:
    from esper.karn.api import KarnApi
    from esper.oona.api import Bus, Subscription
    from esper.oona.envelope import OpenedEnvelope

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Served:
    """What one `esper serve NAME` hosts. `close` runs after the server has stopped."""

    registrations: Sequence[ServiceRegistration]
    background: Sequence[BackgroundTask] = ()
    close: Callable[[], None] | None = None


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class ServeTarget:
    """A subsystem `esper serve` can run."""

    help: str
    build: Callable[[argparse.Namespace], Served]
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=_no_arguments)


# NAME -> "module:attribute" of its ServeTarget, in help order.
SERVE_TARGETS: dict[str, str] = {
    "karn": "esper.cli.serve:KARN",
    "urabrask": "esper.urabrask.serve:URABRASK",
    "urza": "esper.urza.serve:URZA",
    "tezzeret": "esper.tezzeret.serve:TEZZERET",
    "tamiyo": "esper.tamiyo.serve:TAMIYO",
    "simic": "esper.simic.serve:SIMIC",
    "nissa": "esper.nissa.serve:NISSA",
    "tolaria": "esper.tolaria.serve:TOLARIA",
}


def _add_karn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-field-reports",
        type=_positive_int,
        default=None,
        help="field reports kept in memory, oldest forgotten first (default: KarnConfig's)",
    )
    add_bus_arguments(parser, role="consume field reports (durable consumer 'karn')")


def _build_karn(args: argparse.Namespace) -> Served:
    from esper.karn.config import KarnConfig
    from esper.karn.service import KarnService
    from esper.karn.servicer import karn_registration

    overrides: dict[str, Any] = {}
    if args.max_field_reports is not None:
        overrides["max_field_reports"] = args.max_field_reports
    oona = bus_config(args, "karn")
    karn = KarnService.default(KarnConfig(**overrides))
    if oona is None:
        return Served(registrations=[karn_registration(karn)])
    bus = open_bus(oona)
    return Served(
        registrations=[karn_registration(karn)],
        background=[consumer_task(bus, _karn_field_report_intake(karn))],
        close=bus.close,
    )


def _karn_field_report_intake(karn: KarnApi) -> Callable[[Bus], Subscription]:
    """Subscribes Karn's durable "karn" consumer: each FieldReport goes to submit_field_reports."""
    from esper.errors import InvalidArgument
    from esper.leyline.v1 import control_pb2, karn_pb2
    from esper.oona.api import ConsumerSpec

    def handle(opened: OpenedEnvelope) -> None:
        report = opened.message
        try:
            if not isinstance(report, control_pb2.FieldReport):
                raise InvalidArgument(f"carries {report.DESCRIPTOR.full_name}, not a FieldReport")
            karn.submit_field_reports(karn_pb2.SubmitFieldReportsRequest(reports=[report]))
        except InvalidArgument as error:
            # Delivering it again would not help.
            logger.warning("karn: dropped message %s: %s", opened.idempotency_key, error)

    # Every run's field reports (esper.oona.subjects.field_report_subject names one run's).
    return lambda bus: bus.subscribe(ConsumerSpec("karn", ("esper.field_reports.>",)), handle)


KARN = ServeTarget(
    help="Karn: the blueprint template catalog (KarnService)",
    build=_build_karn,
    add_arguments=_add_karn_arguments,
)


def load_target(name: str) -> ServeTarget:
    """The ServeTarget registered under `name`."""
    module_name, _, attribute = SERVE_TARGETS[name].partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(target, ServeTarget):
        raise TypeError(f"{SERVE_TARGETS[name]} is not a ServeTarget")
    return target


def register(subparsers: Any) -> None:
    """Add `esper serve NAME` with the common server flags and each subsystem's own."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    common.add_argument("--port", type=_port, default=0, help="port to listen on (default 0: a free one)")
    common.add_argument(
        "--port-file",
        type=Path,
        default=None,
        help="write the bound port here once serving (atomically); removed on exit",
    )
    metrics = common.add_mutually_exclusive_group()
    metrics.add_argument(
        "--metrics-port",
        type=_port,
        default=0,
        help="port of the Prometheus /metrics endpoint, on --host (default 0: a free one)",
    )
    metrics.add_argument("--no-metrics", action="store_true", help="serve no /metrics endpoint")
    common.add_argument(
        "--metrics-port-file",
        type=Path,
        default=None,
        help="write the bound /metrics port here once serving (atomically, before --port-file); removed on exit",
    )
    common.add_argument(
        "--max-concurrent-rpcs",
        type=_positive_int,
        default=256,
        help="calls in flight (streams included) past which new ones get RESOURCE_EXHAUSTED (default: 256)",
    )
    tls = common.add_argument_group(
        "mTLS",
        "With all three, the server speaks mTLS only, requires a client certificate of that CA and "
        "authorizes every call by its caller's role; its own calls to other servers use the same identity. "
        "Without them it serves plaintext, which a non-loopback --host allows only with --insecure.",
    )
    tls.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="this server's certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key (PEM, owner-only)")
    tls.add_argument("--tls-ca", type=Path, default=None, metavar="FILE", help="the mesh's CA certificate (PEM)")
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="serve plaintext with no authorization on any --host (development only)",
    )
    common.add_argument(
        "--grace-seconds",
        type=_non_negative_float,
        default=5.0,
        help="time in-flight rpcs get to finish on stop (default: 5)",
    )
    serve = subparsers.add_parser(
        "serve",
        help="run one subsystem as a gRPC server",
        description="Run one subsystem as a gRPC server (with health and reflection) until SIGTERM/SIGINT.",
    )
    names = serve.add_subparsers(dest="serve_name", metavar="NAME", title="subsystems")
    names.required = True
    for name in SERVE_TARGETS:
        target = load_target(name)
        parser = names.add_parser(name, parents=[common], help=target.help, description=target.help)
        target.add_arguments(parser)
        parser.set_defaults(handler=_serve, serve_target=target, client_tls=None)


def _serve(args: argparse.Namespace) -> int:
    target: ServeTarget = args.serve_target
    if args.no_metrics and args.metrics_port_file is not None:
        raise UsageError("--metrics-port-file: there is no /metrics endpoint with --no-metrics")
    tls = serve_tls(args)
    # The server's own calls to other servers (Urza, Tamiyo) go out as the same identity.
    args.client_tls = tls
    config = ServerConfig(
        service_name=args.serve_name,
        host=args.host,
        port=args.port,
        grace_seconds=args.grace_seconds,
        metrics_port=None if args.no_metrics else args.metrics_port,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        tls=tls,
    )
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


def serve_tls(args: argparse.Namespace) -> TlsIdentity | None:
    """The identity --tls-cert/--tls-key/--tls-ca name, or None for plaintext (refused off loopback
    without --insecure)."""
    given = [flag for flag in ("tls_cert", "tls_key", "tls_ca") if getattr(args, flag) is not None]
    if given and len(given) < 3:
        raise UsageError("--tls-cert, --tls-key and --tls-ca go together")
    if given:
        if args.insecure:
            raise UsageError("--insecure: the --tls-* flags make the server speak mTLS; drop one or the other")
        try:
            return TlsFiles(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key).read()
        except ValueError as exc:
            raise UsageError(f"--tls-*: {exc}") from None
    if not args.insecure and args.host not in LOOPBACK:
        raise UsageError(
            f"--host {args.host}: a server reachable from elsewhere speaks mTLS (--tls-cert/--tls-key/--tls-ca); "
            "--insecure serves plaintext anyway"
        )
    if args.insecure:
        logger.warning("serving plaintext with no authorization (--insecure): for development only")
    return None


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in [0, 65535], got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
