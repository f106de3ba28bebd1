"""`esper alerts`: the alerts Nissa evaluated, firing and resolved; or the Prometheus rule file.

`esper alerts --mesh FILE` asks the mesh's Nissa (every page of ListAlerts) and
prints one line per alert, newest first; `--json` prints them as
{"alerts": [{"name", "state", "severity", "summary", "labels", "value", "threshold",
"start_time", "resolve_time", "alert_id"}]}. `esper alerts --render-rules` prints
deploy/prometheus/rules/esper.rules.yml as rendered from the rule catalogue.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from esper.cli.common import add_json_flag, print_json
from esper.errors import FailedPrecondition, InvalidArgument, UsageError
from esper.leyline.v1 import alert_pb2, nissa_pb2

DEFAULT_TIMEOUT_SECONDS = 10.0
PAGE_SIZE = 500
# More pages than Nissa can hold (it keeps a bounded number of resolved alerts): a server that
# keeps handing out tokens is broken, and the command stops instead of looping.
MAX_PAGES = 1000
STATES = {"firing": alert_pb2.ALERT_STATE_FIRING, "resolved": alert_pb2.ALERT_STATE_RESOLVED}


class ListsAlerts(Protocol):
    def list_alerts(self, request: nissa_pb2.ListAlertsRequest) -> nissa_pb2.ListAlertsResponse: ...


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="alerts Nissa evaluated (firing and resolved), or the Prometheus rule file",
        description="Print the alerts the mesh's Nissa evaluated, newest first; or, with --render-rules, "
        "the Prometheus rule file rendered from the same rule catalogue.",
    )
    parser.add_argument("--mesh", type=Path, metavar="FILE", help="mesh.json naming Nissa's address")
    parser.add_argument("--state", choices=sorted(STATES), help="only alerts in this state")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"deadline of each call to Nissa (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--render-rules",
        action="store_true",
        help="print the Prometheus rule file (deploy/prometheus/rules/esper.rules.yml); no mesh needed",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=_alerts)


def _alerts(args: argparse.Namespace) -> int:
    if args.render_rules:
        from esper.nissa.alerts.render import render_rules

        sys.stdout.write(render_rules())
        return 0
    if args.mesh is None:
        raise UsageError("--mesh FILE is required (or --render-rules)")
    if not args.timeout > 0:
        raise UsageError(f"--timeout: must be > 0 seconds, got {args.timeout}")
    from esper.clients import NissaClient
    from esper.clients.base import ClientConfig
    from esper.mesh.addresses import load_mesh

    try:
        mesh = load_mesh(args.mesh)
        address, tls = mesh.address("nissa"), mesh.operator_tls()
    except (InvalidArgument, FailedPrecondition) as error:
        raise UsageError(f"--mesh: {args.mesh}: {error.message}") from None
    state = STATES[args.state] if args.state else alert_pb2.ALERT_STATE_UNSPECIFIED
    with NissaClient(ClientConfig(address=address, deadline_seconds=args.timeout, tls=tls)) as nissa:
        alerts = list(all_alerts(nissa, state))
    if args.json:
        from esper.nissa.alerts.convert import alert_to_json

        print_json({"alerts": [alert_to_json(alert) for alert in alerts]})
    else:
        _print_table(alerts)
    return 0


def all_alerts(nissa: ListsAlerts, state: alert_pb2.AlertState) -> Iterator[alert_pb2.Alert]:
    """Every alert in `state` (or all), following ListAlerts' pages."""
    token = ""
    for _ in range(MAX_PAGES):
        page = nissa.list_alerts(nissa_pb2.ListAlertsRequest(page_size=PAGE_SIZE, page_token=token, state=state))
        yield from page.alerts
        if not page.next_page_token:
            return
        token = page.next_page_token
    raise FailedPrecondition(f"Nissa returned more than {MAX_PAGES} pages of alerts; stopped listing")


def _print_table(alerts: list[alert_pb2.Alert]) -> None:
    if not alerts:
        print("no alerts")
        return
    from esper.nissa.alerts.convert import alert_to_json

    rows = [alert_to_json(alert) for alert in alerts]
    name_width = max(len(row["name"]) for row in rows)
    for row in rows:
        when = f"since {row['start_time']}"
        if row["resolve_time"]:
            when = f"{row['start_time']} to {row['resolve_time']}"
        print(f"{row['state']:<8}  {row['severity']:<8}  {row['name']:<{name_width}}  {row['summary']}  ({when})")
