"""`esper serve simic [--nats URL] [--db URL] [--data-dir DIR]`: the SimicService server.

With --nats, the durable "simic" consumer stores every field report published on
Oona; without it, reports arrive through RecordFieldReports only. Imported when
the CLI parser is built, so heavy imports wait for `build`.
"""

from __future__ import annotations

import argparse
import logging

from esper.cli.bus import add_bus_arguments, bus_config, consumer_task, open_bus
from esper.cli.serve import Served, ServeTarget
from esper.home import default_help, state_dir

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
    from esper.simic.config import SimicConfig
    from esper.simic.intake import FieldReportIntake
    from esper.simic.service import SimicService
    from esper.simic.servicer import simic_registration

    oona = bus_config(args, "simic")
    simic = SimicService.open(SimicConfig(data_dir=str(args.data_dir or state_dir("simic")), database_url=args.db))
    if oona is None:
        logger.info("no --nats: field reports arrive through RecordFieldReports only")
        return Served(registrations=[simic_registration(simic)], close=simic.close)
    try:
        bus = open_bus(oona)
    except BaseException:
        simic.close()
        raise
    intake = FieldReportIntake(simic)

    def status() -> str:
        stored, counts, stats = simic.status(), intake.counts(), bus.stats()
        return (
            f"simic: {stored.stored} field reports stored ({counts.stored} from the bus since start), "
            f"{counts.duplicates + stats.duplicates_dropped} duplicates dropped, "
            f"{counts.refused} refused, {stats.dead_lettered_total} dead-lettered"
        )

    def close() -> None:
        bus.close()
        logger.info("%s", status())
        simic.close()

    return Served(
        registrations=[simic_registration(simic)],
        background=[consumer_task(bus, intake.subscribe, status=status)],
        close=close,
    )


SIMIC = ServeTarget(
    help="Simic: the field-report replay buffer; policy training comes later (SimicService)",
    build=_build,
    add_arguments=_add_arguments,
)
