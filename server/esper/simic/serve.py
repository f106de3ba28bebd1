"""`esper serve simic [--nats URL] [--db URL] [--data-dir DIR]`: the SimicService server.

With --nats, the durable "simic" consumer stores every field report published on
Oona; without it, reports arrive through RecordFieldReports only. Imported when
the CLI parser is built, so heavy imports wait for `build`.
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
        help=f"folder for the default SQLite file (default: {default_help('simic')})",
    )
    parser.add_argument(
        "--db",
        default="",
        metavar="URL",
        help="field report database: sqlite:///FILE or postgresql+psycopg://USER:PASS@HOST:PORT/DB "
        "(default: SQLite in the data dir)",
    )
    add_bus_arguments(parser, role="consume field reports (durable consumer 'simic')")


def _build(args: argparse.Namespace) -> Served:
    from esper.leyline.v1.services import SIMIC_SERVICE
    from esper.mesh.hosting import host
    from esper.simic.config import SimicConfig
    from esper.simic.intake import FieldReportIntake
    from esper.simic.service import SimicService

    oona = bus_config(args, "simic")
    with ExitStack() as opened:
        simic = SimicService.open(SimicConfig(data_dir=str(args.data_dir or state_dir("simic")), database_url=args.db))
        opened.callback(simic.close)
        if oona is None:
            logger.info("no --nats: field reports arrive through RecordFieldReports only")
            return Served.owning(opened, registrations=[host(SIMIC_SERVICE.bind(simic))])
        bus = open_bus(oona)
        intake = FieldReportIntake(simic)

        def status() -> str:
            stored, counts, stats = simic.status(), intake.counts(), bus.stats()
            return (
                f"simic: {stored.stored} field reports stored ({counts.stored} from the bus since start), "
                f"{counts.duplicates + stats.duplicates_dropped} duplicates dropped, "
                f"{counts.refused} refused, {stats.dead_lettered_total} dead-lettered"
            )

        # Last opened, first closed: the bus, then the final status line, then the store.
        opened.callback(lambda: logger.info("%s", status()))
        opened.callback(bus.close)
        return Served.owning(
            opened,
            registrations=[host(SIMIC_SERVICE.bind(simic))],
            background=[consumer_task(bus, intake.subscribe, status=status)],
        )


SIMIC = ServeTarget(
    help="Simic: the field-report replay buffer; policy training comes later (SimicService)",
    build=_build,
    add_arguments=_add_arguments,
)
