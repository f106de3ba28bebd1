"""`esper serve simic [--nats URL] [--db URL] [--data-dir DIR] [--store S]`: the SimicService server.

With --nats, the durable "simic" consumer stores every field report and
"simic_transitions" every transition published on Oona, and a policy that passes
the validation gate is announced on `esper.policy.updates` (Tamiyo follows it);
without it, reports and transitions arrive through their rpcs and policies are
stored but announced to no one. Imported when the CLI parser is built, so heavy
imports wait for `build`.
"""

from __future__ import annotations

import argparse
import logging
from contextlib import ExitStack

from esper.home import default_help, state_dir
from esper.mesh.target import Served, ServeTarget
from esper.oona.flags import add_bus_arguments, bus_config, consumer_task, open_bus

logger = logging.getLogger(__name__)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder for the default SQLite file, objects and episode data (default: {default_help('simic')})",
    )
    parser.add_argument(
        "--db",
        default="",
        metavar="URL",
        help="database: sqlite:///FILE or postgresql+psycopg://USER:PASS@HOST:PORT/DB "
        "(default: SQLite in the data dir)",
    )
    parser.add_argument(
        "--store",
        default="",
        metavar="DIR|s3://BUCKET[/PREFIX]",
        help="object store for transition tensors and policy weights (default: objects/ in the data dir)",
    )
    parser.add_argument(
        "--gate-suite",
        default="validation",
        help="task suite of the validation gate; '' stores trained policies without ever publishing them",
    )
    parser.add_argument("--gate-seeds", type=int, default=2, help="seeds per gate task (default: 2)")
    parser.add_argument("--workers", type=int, default=1, help="episodes played at once (default: 1)")
    parser.add_argument("--assets-dir", default="", help="embedded asset cache episodes use (default: Esper's)")
    add_bus_arguments(parser, role="consume field reports and transitions, publish policy updates")


def _build(args: argparse.Namespace) -> Served:
    from esper.leyline.v1.services import SIMIC_SERVICE
    from esper.mesh.hosting import host
    from esper.simic.config import SimicConfig, TrainingConfig
    from esper.simic.intake import FieldReportIntake, PolicyPublisher, TransitionIntake
    from esper.simic.service import SimicService

    oona = bus_config(args, "simic")
    config = SimicConfig(
        data_dir=str(args.data_dir or state_dir("simic")),
        database_url=args.db,
        store=args.store,
        training=TrainingConfig(
            gate_suite=args.gate_suite,
            gate_seeds=args.gate_seeds,
            workers=args.workers,
            assets_dir=args.assets_dir,
        ),
    )
    with ExitStack() as opened:
        if oona is None:
            logger.info("no --nats: reports and transitions arrive through their rpcs; policies are not announced")
            simic = SimicService.open(config)
            opened.callback(simic.close)
            return Served.owning(opened, registrations=[host(SIMIC_SERVICE.bind(simic))])
        bus = open_bus(oona)
        opened.callback(bus.close)
        simic = SimicService.open(config, publish=PolicyPublisher(bus))
        reports, transitions = FieldReportIntake(simic), TransitionIntake(simic)

        def status() -> str:
            stored, counts, moved, stats = simic.status(), reports.counts(), transitions.counts(), bus.stats()
            return (
                f"simic: {stored.stored} field reports stored ({counts.stored} from the bus since start), "
                f"{moved.stored} transitions from the bus, "
                f"{counts.duplicates + moved.duplicates + stats.duplicates_dropped} duplicates dropped, "
                f"{counts.refused + moved.refused} refused, {stats.dead_lettered_total} dead-lettered"
            )

        # Last opened, first closed: the store (a job in progress may still publish), the final
        # status line, then the bus.
        opened.callback(lambda: logger.info("%s", status()))
        opened.callback(simic.close)
        return Served.owning(
            opened,
            registrations=[host(SIMIC_SERVICE.bind(simic))],
            background=[
                consumer_task(bus, reports.subscribe, status=status),
                consumer_task(bus, transitions.subscribe),
            ],
        )


SIMIC = ServeTarget(
    help="Simic: the replay store, policy training (behaviour cloning, PPO) and policies (SimicService)",
    build=_build,
    add_arguments=_add_arguments,
)
