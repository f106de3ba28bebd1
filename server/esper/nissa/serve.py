"""`esper serve nissa`: NissaService and the OTLP TraceService on one gRPC server.

Nissa stores the spans it receives (bounded, SQLite by default) and can forward
them to another OTLP endpoint; with `--nats` it follows runs on the bus for the run
board; it scrapes the mesh's /metrics for its alert rules; and it serves the
mission-control page over HTTP. Imported when the CLI parser is built, so heavy
imports wait for `build`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from esper.errors import UsageError
from esper.home import default_help, state_dir
from esper.mesh.flags import port, positive_float, positive_int
from esper.mesh.server import BackgroundTask, write_port_file
from esper.mesh.target import Served, ServeTarget
from esper.nissa.config import DEFAULT_MAX_SPANS
from esper.oona.flags import add_bus_arguments, bus_config, consumer_task, open_bus

if TYPE_CHECKING:
    from esper.nissa.alerts.engine import AlertEngine
    from esper.nissa.board import RunBoard
    from esper.nissa.spans import SpanStore
    from esper.nissa.trace_intake import ExportSink

logger = logging.getLogger(__name__)

CONSUMER = "nissa"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    traces = parser.add_argument_group("traces")
    traces.add_argument(
        "--db",
        default=None,
        metavar="FILE|URL",
        help=f"span store: a SQLite file, ':memory:', sqlite:///FILE or postgresql+psycopg://USER@HOST/DB "
        f"(default: {default_help('nissa', 'spans.db')})",
    )
    traces.add_argument(
        "--max-spans",
        type=positive_int,
        default=DEFAULT_MAX_SPANS,
        help=f"spans kept; past it whole oldest traces are evicted (default: {DEFAULT_MAX_SPANS})",
    )
    traces.add_argument(
        "--forward",
        default=None,
        metavar="ENDPOINT",
        help="also send every accepted export to this OTLP/gRPC endpoint (host:port or http://host:port)",
    )
    add_bus_arguments(parser, role=f"follow runs' telemetry for the run board (durable consumer '{CONSUMER}')")
    alerts = parser.add_argument_group("alerts")
    alerts.add_argument(
        "--mesh", type=Path, default=None, metavar="FILE", help="mesh.json whose servers' /metrics are scraped"
    )
    alerts.add_argument(
        "--alert-interval",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="time between scrape-and-evaluate cycles (default: the alert config's)",
    )
    alerts.add_argument(
        "--alert-for",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="how long rule NAME must hold before it fires (repeatable)",
    )
    web = parser.add_argument_group("mission control")
    web.add_argument("--web-port", type=port, default=0, help="mission-control HTTP port (default 0: a free one)")
    web.add_argument("--no-web", action="store_true", help="do not serve the mission-control page")
    web.add_argument(
        "--web-port-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the mission-control port here once serving (atomically); removed on exit",
    )
    web.add_argument(
        "--web-allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name the page answers to besides localhost and --host (repeatable), e.g. its DNS name",
    )
    web.add_argument(
        "--web-max-connections",
        type=positive_int,
        default=32,
        help="connections the page serves at once; more get 503 (default: 32)",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.leyline.v1.services import NISSA_SERVICE
    from esper.mesh.hosting import host
    from esper.nissa.alerts.task import alert_task
    from esper.nissa.service import NissaService
    from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake

    if args.no_web and args.web_port_file is not None:
        raise UsageError("--web-port-file needs the mission-control page (drop --no-web)")
    with ExitStack() as opened:
        store = _open_store(args)
        opened.callback(store.close)
        forward = _open_forwarder(args, opened)
        engine = _alert_engine(args)
        board, bus_tasks = _run_board(args, opened)
        background = [*bus_tasks, alert_task(engine, args.alert_interval)]
        if not args.no_web:
            _start_web(args, board, engine, opened)
        nissa = NissaService(store, board.summary, engine.alerts, run_window=board.run_window)
        registrations = [
            host(NISSA_SERVICE.bind(nissa)),
            # Storing an export writes to the database: off the event loop, as every rpc here.
            host(TRACE_SERVICE.bind(SpanIntake(store, forward=forward))),
        ]
        return Served.owning(opened, registrations=registrations, background=background)


def _open_store(args: argparse.Namespace) -> SpanStore:
    from esper.nissa.config import SpanStoreConfig, database_url
    from esper.nissa.spans import SpanStore

    try:
        db = args.db or str(state_dir("nissa") / "spans.db")
        config = SpanStoreConfig(url=database_url(db), max_spans=args.max_spans)
        store = SpanStore.open(config)
    except ValueError as error:
        raise UsageError(f"--db: {error}") from None
    logger.info("storing at most %d spans in %s", args.max_spans, store.safe_url)
    return store


def _open_forwarder(args: argparse.Namespace, opened: ExitStack) -> ExportSink | None:
    if not args.forward:
        return None
    from esper.nissa.config import ForwarderConfig
    from esper.nissa.forwarder import SpanForwarder

    try:
        forwarder = SpanForwarder(ForwarderConfig(endpoint=args.forward))
    except ValueError as error:
        raise UsageError(f"--forward: {error}") from None
    opened.callback(forwarder.close)
    return forwarder.submit


def _alert_engine(args: argparse.Namespace) -> AlertEngine:
    from esper.errors import InvalidArgument
    from esper.nissa.alerts.config import NissaAlertsConfig, parse_for_override
    from esper.nissa.alerts.engine import AlertEngine

    try:
        overrides = dict(parse_for_override(text) for text in args.alert_for)
    except InvalidArgument as error:
        raise UsageError(f"--alert-for: {error.message}") from None
    try:
        interval = {} if args.alert_interval is None else {"evaluation_interval_seconds": args.alert_interval}
        config = NissaAlertsConfig(mesh_file=args.mesh, for_overrides=overrides, **interval)
    except InvalidArgument as error:
        raise UsageError(f"--alert-interval: {error.message}") from None
    if args.mesh is None:
        logger.info("no --mesh: alert rules have no metrics to scrape")
    return AlertEngine(config)


def _run_board(args: argparse.Namespace, opened: ExitStack) -> tuple[RunBoard, Sequence[BackgroundTask]]:
    """The run board, fed from the bus when --nats is given (empty otherwise)."""
    from esper.nissa.board import RunBoard, board_intake

    board = RunBoard()
    oona = bus_config(args, CONSUMER)
    if oona is None:
        logger.info("no --nats: the run board stays empty")
        return board, ()
    bus = open_bus(oona)
    opened.callback(bus.close)
    return board, (consumer_task(bus, board_intake(board)),)


def _start_web(args: argparse.Namespace, board: RunBoard, engine: AlertEngine, opened: ExitStack) -> None:
    """Serve mission control from now until Nissa closes. Its port file is written before the gRPC
    server's, so a reader that waits for --port-file finds --web-port-file too."""
    from esper.leyline.v1 import alert_pb2
    from esper.nissa.web import MissionControl

    def firing() -> Sequence[alert_pb2.Alert]:
        return engine.alerts(alert_pb2.ALERT_STATE_FIRING)

    web = MissionControl(
        board,
        firing,
        args.host,
        args.web_port,
        max_connections=args.web_max_connections,
        allowed_hosts=args.web_allowed_host,
    )
    try:
        bound = web.start()
    except OSError as error:
        raise UsageError(f"--web-port: cannot listen on {args.host}:{args.web_port}: {error.strerror}") from None
    opened.callback(web.stop)
    port_file: Path | None = args.web_port_file
    if port_file is not None:
        write_port_file(port_file, bound)
        opened.callback(port_file.unlink, missing_ok=True)


NISSA = ServeTarget(
    help="Nissa: OTLP trace receiver and store, alerts, run summaries and mission control "
    "(NissaService + OpenTelemetry TraceService)",
    build=_build,
    add_arguments=_add_arguments,
)
