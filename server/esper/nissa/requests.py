"""Checks of every Nissa request, in one place; each raises InvalidArgument naming the field."""

from __future__ import annotations

from esper import ids
from esper.errors import InvalidArgument
from esper.leyline.v1 import alert_pb2, nissa_pb2
from esper.paging import validate_page_size

_ALERT_STATES = frozenset(alert_pb2.AlertState.values())


def check_list_alerts(request: nissa_pb2.ListAlertsRequest) -> None:
    validate_page_size(request.page_size)
    if request.state not in _ALERT_STATES:
        raise InvalidArgument.for_field("state", f"{request.state} is not an AlertState")


def check_get_run_summary(request: nissa_pb2.GetRunSummaryRequest) -> None:
    ids.RUN.check("run_id", request.run_id)


def check_find_traces(request: nissa_pb2.FindTracesRequest) -> None:
    if not (request.run_id or request.seed_id or request.command_id):
        raise InvalidArgument.for_field("run_id", "set at least one of run_id, seed_id, command_id")
    ids.RUN.check("run_id", request.run_id, required=False)
    ids.SEED.check("seed_id", request.seed_id, required=False)
    ids.COMMAND.check("command_id", request.command_id, required=False)
    validate_page_size(request.limit, field="limit")
