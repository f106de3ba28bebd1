"""`esper serve tamiyo [--urza ADDR] [--simic ADDR] [--nats URL]`: the TamiyoService server.

Without --urza the controller has no kernel directory: it still tracks runs and
steps seeds through their lifecycle, but every germination waits with a decision
saying so. With --simic, Simic's policies can be loaded by id. With --nats it
consumes seed telemetry (durable "tamiyo") and publishes each step's commands,
field reports and transitions (`esper.tamiyo.bus`); with --simic too it follows
the policies Simic publishes (durable "tamiyo_policy"), swapping between two steps,
until LoadPolicy pins one (or from the start, with --pin). Imported when the CLI
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
    parser.add_argument(
        "--simic", default=None, metavar="ADDR", help="Simic's address, host:port, where trained policies are fetched"
    )
    parser.add_argument(
        "--policy", default=None, metavar="ID|PATH", help="policy to start with (default: the config's, heuristic-v1)"
    )
    parser.add_argument("--pin", action="store_true", help="keep the starting policy: ignore Simic's policy updates")
    parser.add_argument("--conservative", action="store_true", help="never germinate (conservative mode for every run)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="Esper YAML config whose `tamiyo` section sets the policy's thresholds (default: TamiyoConfig's)",
    )
    add_bus_arguments(
        parser,
        role="consume seed telemetry (durable consumer 'tamiyo'), publish commands, field reports and transitions",
    )


def _build(args: argparse.Namespace) -> Served:
    from esper.clients import SimicClient, UrzaClient
    from esper.clients.base import ClientConfig
    from esper.config import load_config
    from esper.leyline.v1.services import TAMIYO_SERVICE
    from esper.mesh.hosting import host
    from esper.tamiyo.config import TamiyoConfig
    from esper.tamiyo.controller import TamiyoController

    settings = load_config(args.config).tamiyo if args.config else TamiyoConfig()
    if args.conservative:
        settings = dataclasses.replace(settings, conservative_mode=True)
    if args.policy:
        settings = dataclasses.replace(settings, policy_id=args.policy)
    oona = bus_config(args, "tamiyo")
    with ExitStack() as opened:
        urza = simic = None
        if args.urza:
            client = UrzaClient(
                ClientConfig(address=args.urza, deadline_seconds=args.urza_deadline, tls=args.client_tls)
            )
            urza = opened.enter_context(closing(client))
        if args.simic:
            simic = opened.enter_context(
                closing(SimicClient(ClientConfig(address=args.simic, deadline_seconds=30.0, tls=args.client_tls)))
            )
        controller = TamiyoController(None, settings, kernels=urza, policies=simic)
        if oona is None:
            return Served.owning(opened, registrations=[host(TAMIYO_SERVICE.bind(controller))])
        bus = open_bus(oona)
        opened.callback(bus.close)
        return Served.owning(opened, *_on_bus(controller, bus, follow=simic is not None and not args.pin))


def _on_bus(
    controller: TamiyoController, bus: JetStreamBus, *, follow: bool
) -> tuple[list[ServiceRegistration], list[BackgroundTask]]:
    """Tamiyo publishing what it decides and consuming seed telemetry (and Simic's policies) on Oona."""
    from esper.leyline.v1 import tamiyo_pb2
    from esper.leyline.v1.services import TAMIYO_SERVICE
    from esper.mesh.hosting import host
    from esper.tamiyo.bus import PolicyUpdateIntake, PublishingTamiyo, TelemetryIntake, TransitionPublisher

    tamiyo = PublishingTamiyo(controller, bus)
    transitions = TransitionPublisher(bus)
    controller.attach_transitions(transitions)
    background = []
    if follow:
        controller.load_policy(tamiyo_pb2.LoadPolicyRequest(follow_updates=True))
        background.append(consumer_task(bus, PolicyUpdateIntake(controller).subscribe))

    def status() -> str:
        published, refused = tamiyo.counts()
        moved, dropped = transitions.counts()
        stats = bus.stats()
        return (
            f"tamiyo: {published} commands and field reports and {moved} transitions published "
            f"({refused + dropped} refused, {stats.pending_publish} waiting for NATS), "
            f"{stats.handled} messages handled, {stats.dead_lettered_total} dead-lettered"
        )

    return (
        [host(TAMIYO_SERVICE.bind(tamiyo))],
        [consumer_task(bus, TelemetryIntake(controller).subscribe, status=status), *background],
    )


TAMIYO = ServeTarget(
    help="Tamiyo: the strategic controller, heuristic and learned policies (TamiyoService)",
    build=_build,
    add_arguments=_add_arguments,
)
