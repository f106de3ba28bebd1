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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from esper.cli.bus import add_bus_arguments, bus_config, consumer_task, open_bus
from esper.cli.serve import Served, ServeTarget

if TYPE_CHECKING:
    from esper.oona.jetstream import JetStreamBus
    from esper.tamiyo.controller import TamiyoController


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--urza", default=None, metavar="ADDR", help="Urza's address, host:port, where kernels are queried"
    )
    parser.add_argument(
        "--urza-deadline",
        type=_positive_seconds,
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
        parser, role="consume seed telemetry (durable consumer 'tamiyo'), publish commands and field reports"
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _build(args: argparse.Namespace) -> Served:
    from esper.clients.base import ClientConfig
    from esper.clients.simic import SimicClient
    from esper.clients.urza import UrzaClient
    from esper.config import load_config
    from esper.tamiyo.config import TamiyoConfig
    from esper.tamiyo.controller import TamiyoController
    from esper.tamiyo.servicer import tamiyo_registration

    settings = load_config(args.config).tamiyo if args.config else TamiyoConfig()
    if args.conservative:
        settings = dataclasses.replace(settings, conservative_mode=True)
    if args.policy:
        settings = dataclasses.replace(settings, policy_id=args.policy)
    oona = bus_config(args, "tamiyo")
    clients: list[Any] = []
    try:
        urza = UrzaClient(ClientConfig(address=args.urza, deadline_seconds=args.urza_deadline)) if args.urza else None
        if urza is not None:
            clients.append(urza)
        simic = SimicClient(ClientConfig(address=args.simic, deadline_seconds=30.0)) if args.simic else None
        if simic is not None:
            clients.append(simic)
        controller = TamiyoController(None, settings, kernels=urza, policies=simic)

        def close_clients() -> None:
            for client in clients:
                client.close()

        if oona is None:
            return Served(registrations=[tamiyo_registration(controller)], close=close_clients)
        bus = open_bus(oona)
    except BaseException:
        for client in clients:
            client.close()
        raise
    follow = simic is not None and not args.pin
    return _served_on_bus(controller, bus, close_clients, follow=follow)


def _served_on_bus(
    controller: TamiyoController, bus: JetStreamBus, close_clients: Callable[[], None], *, follow: bool
) -> Served:
    from esper.leyline.v1 import tamiyo_pb2
    from esper.tamiyo.bus import PolicyUpdateIntake, PublishingTamiyo, TelemetryIntake, TransitionPublisher
    from esper.tamiyo.servicer import tamiyo_registration

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

    def close() -> None:
        bus.close()
        close_clients()

    return Served(
        registrations=[tamiyo_registration(tamiyo)],
        background=[consumer_task(bus, TelemetryIntake(controller).subscribe, status=status), *background],
        close=close,
    )


TAMIYO = ServeTarget(
    help="Tamiyo: the strategic controller, heuristic and learned policies (TamiyoService)",
    build=_build,
    add_arguments=_add_arguments,
)
