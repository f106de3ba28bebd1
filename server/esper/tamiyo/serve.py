"""`esper serve tamiyo [--urza ADDR]`: the TamiyoService server.

Without --urza the controller has no kernel directory: it still tracks runs and
steps seeds through their lifecycle, but every germination waits with a decision
saying so. Imported when the CLI parser is built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse

from esper.cli.serve import Served, ServeTarget


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
        "--conservative", action="store_true", help="never germinate (conservative mode for every run)"
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
    from esper.clients.urza import UrzaClient
    from esper.tamiyo.config import TamiyoConfig
    from esper.tamiyo.controller import TamiyoController
    from esper.tamiyo.servicer import tamiyo_registration

    urza = None
    if args.urza:
        urza = UrzaClient(ClientConfig(address=args.urza, deadline_seconds=args.urza_deadline))
    controller = TamiyoController(None, TamiyoConfig(conservative_mode=args.conservative), kernels=urza)
    return Served(
        registrations=[tamiyo_registration(controller)],
        close=urza.close if urza is not None else None,
    )


TAMIYO = ServeTarget(
    help="Tamiyo: the strategic controller, heuristic policy (TamiyoService)",
    build=_build,
    add_arguments=_add_arguments,
)
