"""`esper serve karn [--nats URL]`: the KarnService server.

With --nats, the durable "karn" consumer takes every run's field reports from Oona
into the catalog's report log; without it, reports arrive through
SubmitFieldReports only. Imported when the CLI parser is built, so heavy imports
wait for `build`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from esper.mesh.flags import positive_int
from esper.mesh.target import Served, ServeTarget
from esper.oona.flags import add_bus_arguments, bus_config, consumer_task, open_bus

if TYPE_CHECKING:
    from esper.karn.service import KarnService
    from esper.oona.api import Bus, Subscription
    from esper.oona.envelope import OpenedEnvelope

logger = logging.getLogger(__name__)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-field-reports",
        type=positive_int,
        default=None,
        help="field reports kept in memory, oldest forgotten first (default: KarnConfig's)",
    )
    add_bus_arguments(parser, role="consume field reports (durable consumer 'karn')")


def _build(args: argparse.Namespace) -> Served:
    from esper.karn.config import KarnConfig
    from esper.karn.service import KarnService
    from esper.leyline.v1.services import KARN_SERVICE
    from esper.mesh.hosting import host

    overrides: dict[str, Any] = {}
    if args.max_field_reports is not None:
        overrides["max_field_reports"] = args.max_field_reports
    oona = bus_config(args, "karn")
    karn = KarnService.default(KarnConfig(**overrides))
    # A query builds IRs for the site's shape: it runs in a worker thread, as every Karn rpc does.
    registration = host(KARN_SERVICE.bind(karn))
    if oona is None:
        return Served(registrations=[registration])
    with ExitStack() as opened:
        bus = open_bus(oona)
        opened.callback(bus.close)
        return Served.owning(
            opened,
            registrations=[registration],
            background=[consumer_task(bus, field_report_intake(karn))],
        )


def field_report_intake(karn: KarnService) -> Callable[[Bus], Subscription]:
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
    build=_build,
    add_arguments=_add_arguments,
)
