"""`esper serve tamiyo [--urza ADDR] [--nats URL]`: the TamiyoService server.

Without --urza the controller has no kernel directory: it still tracks runs and
steps seeds through their lifecycle, but every germination waits with a decision
saying so. With --nats it consumes seed telemetry (durable "tamiyo") and publishes
each step's commands and field reports (`esper.tamiyo.bus`). Imported when the CLI
parser is built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse
import dataclasses
from contextlib import ExitStack, closing
from typing import TYPE_CHECKING

from esper.mesh.flags import positive_float
from esper.mesh.target import Served, ServeTarget
from esper.oona.flags import add_bus_arguments, bus_config, consumer_task, open_bus

if TYPE_CHECKING:
    from esper.mesh.server import BackgroundTask, ServiceRegistration
    from esper.oona.jetstream import JetStreamBus
    from esper.tamiyo.controller import TamiyoController


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--urza", default=None, metavar="ADDR", help="Urza's address, host:port, where kernels are queried"
    )
    parser.add_argument(
        "--urza-deadline",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="deadline of one kernel query, retries included (default: 2)",
    )
    parser.add_argument("--conservative", action="store_true", help="never germinate (conservative mode for every run)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="Esper YAML config whose `tamiyo` section sets the policy's thresholds (default: TamiyoConfig's)",
    )
    add_bus_arguments(
        parser, role="consume seed telemetry (durable consumer 'tamiyo'), publish commands and field reports"
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.clients import UrzaClient
    from esper.clients.base import ClientConfig
    from esper.config import load_config
    from esper.leyline.v1.services import TAMIYO_SERVICE
    from esper.mesh.hosting import host
    from esper.tamiyo.config import TamiyoConfig
    from esper.tamiyo.controller import TamiyoController

    settings = load_config(args.config).tamiyo if args.config else TamiyoConfig()
    if args.conservative:
        settings = dataclasses.replace(settings, conservative_mode=True)
    oona = bus_config(args, "tamiyo")
    with ExitStack() as opened:
        urza = None
        if args.urza:
            client = UrzaClient(
                ClientConfig(address=args.urza, deadline_seconds=args.urza_deadline, tls=args.client_tls)
            )
            urza = opened.enter_context(closing(client))
        controller = TamiyoController(None, settings, kernels=urza)
        if oona is None:
            return Served.owning(opened, registrations=[host(TAMIYO_SERVICE.bind(controller))])
        bus = open_bus(oona)
        opened.callback(bus.close)
        return Served.owning(opened, *_on_bus(controller, bus))


def _on_bus(controller: TamiyoController, bus: JetStreamBus) -> tuple[list[ServiceRegistration], list[BackgroundTask]]:
    """Tamiyo publishing what it decides, and consuming seed telemetry, on Oona."""
    from esper.leyline.v1.services import TAMIYO_SERVICE
    from esper.mesh.hosting import host
    from esper.tamiyo.bus import PublishingTamiyo, TelemetryIntake

    tamiyo = PublishingTamiyo(controller, bus)

    def status() -> str:
        published, refused = tamiyo.counts()
        stats = bus.stats()
        return (
            f"tamiyo: {published} commands and field reports published ({refused} refused, "
            f"{stats.pending_publish} waiting for NATS), {stats.handled} telemetry reports observed, "
            f"{stats.dead_lettered_total} dead-lettered"
        )

    return (
        [host(TAMIYO_SERVICE.bind(tamiyo))],
        [consumer_task(bus, TelemetryIntake(controller).subscribe, status=status)],
    )


TAMIYO = ServeTarget(
    help="Tamiyo: the strategic controller, heuristic policy (TamiyoService)",
    build=_build,
    add_arguments=_add_arguments,
)
