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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from esper.cli.bus import add_bus_arguments, bus_config, consumer_task, open_bus
from esper.cli.common import UsageError
from esper.cli.serve import Served, ServeTarget
from esper.home import default_help, state_dir
from esper.mesh.server import BackgroundTask, write_port_file
from esper.nissa.config import DEFAULT_MAX_SPANS

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
        type=_positive_int,
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
        type=_positive_float,
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
    web.add_argument("--web-port", type=_port, default=0, help="mission-control HTTP port (default 0: a free one)")
    web.add_argument("--no-web", action="store_true", help="do not serve the mission-control page")
    web.add_argument(
        "--web-port-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the mission-control port here once serving (atomically); removed on exit",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.nissa.alerts.task import alert_task
    from esper.nissa.receiver import trace_registration
    from esper.nissa.service import NissaService
    from esper.nissa.servicer import nissa_registration
    from esper.nissa.trace_intake import SpanIntake

    if args.no_web and args.web_port_file is not None:
        raise UsageError("--web-port-file needs the mission-control page (drop --no-web)")
    closers: list[Callable[[], None]] = []
    try:
        store = _open_store(args)
        closers.append(store.close)
        forward = _open_forwarder(args, closers)
        engine = _alert_engine(args)
        board, bus_tasks = _run_board(args, closers)
        background = [*bus_tasks, alert_task(engine, args.alert_interval)]
        if not args.no_web:
            _start_web(args, board, engine, closers)
        nissa = NissaService(store, board, engine, run_window=board.run_window)
        registrations = [nissa_registration(nissa), trace_registration(SpanIntake(store, forward=forward))]
    except BaseException:
        _close_all(closers)
        raise
    return Served(registrations=registrations, background=background, close=lambda: _close_all(closers))


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


def _open_forwarder(args: argparse.Namespace, closers: list[Callable[[], None]]) -> ExportSink | None:
    if not args.forward:
        return None
    from esper.nissa.config import ForwarderConfig
    from esper.nissa.forwarder import SpanForwarder

    try:
        forwarder = SpanForwarder(ForwarderConfig(endpoint=args.forward))
    except ValueError as error:
        raise UsageError(f"--forward: {error}") from None
    closers.append(forwarder.close)
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


def _run_board(
    args: argparse.Namespace, closers: list[Callable[[], None]]
) -> tuple[RunBoard, Sequence[BackgroundTask]]:
    """The run board, fed from the bus when --nats is given (empty otherwise)."""
    from esper.nissa.board import RunBoard, board_intake

    board = RunBoard()
    oona = bus_config(args, CONSUMER)
    if oona is None:
        logger.info("no --nats: the run board stays empty")
        return board, ()
    bus = open_bus(oona)
    closers.append(bus.close)
    return board, (consumer_task(bus, board_intake(board)),)


def _start_web(
    args: argparse.Namespace, board: RunBoard, engine: AlertEngine, closers: list[Callable[[], None]]
) -> None:
    """Serve mission control from now until Nissa closes. Its port file is written before the gRPC
    server's, so a reader that waits for --port-file finds --web-port-file too."""
    from esper.leyline.v1 import alert_pb2
    from esper.nissa.web import MissionControl

    def firing() -> Sequence[alert_pb2.Alert]:
        return engine.alerts(alert_pb2.ALERT_STATE_FIRING)

    web = MissionControl(board, firing, args.host, args.web_port)
    try:
        port = web.start()
    except OSError as error:
        raise UsageError(f"--web-port: cannot listen on {args.host}:{args.web_port}: {error.strerror}") from None
    closers.append(web.stop)
    port_file: Path | None = args.web_port_file
    if port_file is not None:
        write_port_file(port_file, port)
        closers.append(lambda: port_file.unlink(missing_ok=True))


def _close_all(closers: list[Callable[[], None]]) -> None:
    for close in reversed(closers):
        try:
            close()
        except Exception:
            logger.exception("closing a Nissa part failed")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in [0, 65535], got {value}")
    return value


NISSA = ServeTarget(
    help="Nissa: OTLP trace receiver and store, alerts, run summaries and mission control "
    "(NissaService + OpenTelemetry TraceService)",
    build=_build,
    add_arguments=_add_arguments,
)
