"""Nissa in process: stored traces, alerts and run summaries (the NissaService rpcs).

Composed from its parts: the span store answers FindTraces, the alert engine
ListAlerts, the run board GetRunSummary (with the run's alerts added). A part that
is not there makes its rpc answer UNIMPLEMENTED, naming what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from google.protobuf import timestamp_pb2

from esper.errors import Unimplemented
from esper.leyline.v1 import alert_pb2, nissa_pb2
from esper.nissa.requests import check_find_traces, check_get_run_summary, check_list_alerts
from esper.nissa.spans import SpanStore, StoredSpan, StoredTrace
from esper.paging import decode_page_token, encode_page_token, validate_page_size

RUN_ID_LABEL = "run_id"
# (start, end) of a run in seconds since the epoch; end None while it runs. None when not known.
RunWindow = Callable[[str], tuple[float, float | None] | None]
# A run's summary as observed on the bus, its alerts left empty; NotFound for an unknown run (RunBoard.summary).
Summaries = Callable[[str], nissa_pb2.GetRunSummaryResponse]
# Alerts in a state (every state when unspecified), newest first (AlertEngine.alerts).
Alerts = Callable[..., list[alert_pb2.Alert]]


class NissaService:
    """The in-process Nissa over a span store, an optional run board and an optional alert engine.

    `board` gives a run's summary (RunBoard.summary), `alerts` the alerts in a state
    (AlertEngine.alerts).

    `run_window`, when given, says when a run started and ended, so GetRunSummary also
    lists alerts without a run_id label that fired while the run was going.
    """

    def __init__(
        self,
        spans: SpanStore | None,
        board: Summaries | None = None,
        alerts: Alerts | None = None,
        *,
        run_window: RunWindow | None = None,
    ) -> None:
        self._spans = spans
        self._board = board
        self._alerts = alerts
        self._run_window = run_window

    def list_alerts(self, request: nissa_pb2.ListAlertsRequest) -> nissa_pb2.ListAlertsResponse:
        check_list_alerts(request)
        if self._alerts is None:
            raise Unimplemented("ListAlerts: this Nissa evaluates no alerts (no alert engine configured)")
        page_size = validate_page_size(request.page_size)
        fingerprint = f"alerts:state={request.state}"
        offset = decode_page_token(request.page_token, fingerprint)
        alerts = self._alerts(request.state)
        page = alerts[offset : offset + page_size]
        following = offset + len(page)
        return nissa_pb2.ListAlertsResponse(
            alerts=page,
            next_page_token=encode_page_token(following, fingerprint) if following < len(alerts) else "",
        )

    def get_run_summary(self, request: nissa_pb2.GetRunSummaryRequest) -> nissa_pb2.GetRunSummaryResponse:
        check_get_run_summary(request)
        if self._board is None:
            raise Unimplemented("GetRunSummary: this Nissa follows no runs (no run board: start it with --nats)")
        # A copy: the board's answer may be shared, and its alerts are replaced here.
        response = nissa_pb2.GetRunSummaryResponse()
        response.CopyFrom(self._board(request.run_id))
        if self._alerts is not None:
            window = self._run_window(request.run_id) if self._run_window is not None else None
            del response.alerts[:]
            response.alerts.extend(alerts_of_run(self._alerts(), request.run_id, window))
        return response

    def find_traces(self, request: nissa_pb2.FindTracesRequest) -> nissa_pb2.FindTracesResponse:
        check_find_traces(request)
        if self._spans is None:
            raise Unimplemented("FindTraces: this Nissa stores no traces (no span store configured)")
        found = self._spans.find_traces(
            run_id=request.run_id,
            seed_id=request.seed_id,
            command_id=request.command_id,
            limit=validate_page_size(request.limit, field="limit"),
        )
        return nissa_pb2.FindTracesResponse(traces=[trace_summary(trace) for trace in found])


def alerts_of_run(
    alerts: Sequence[alert_pb2.Alert], run_id: str, window: tuple[float, float | None] | None
) -> list[alert_pb2.Alert]:
    """Alerts labelled with `run_id`, plus unlabelled ones that started firing inside `window`."""
    chosen = []
    for alert in alerts:
        labelled = alert.labels.get(RUN_ID_LABEL, "")
        if labelled:
            if labelled == run_id:
                chosen.append(alert)
        elif window is not None and _fired_within(alert, window):
            chosen.append(alert)
    return chosen


def _fired_within(alert: alert_pb2.Alert, window: tuple[float, float | None]) -> bool:
    if not alert.HasField("start_time"):
        return False
    fired = alert.start_time.seconds + alert.start_time.nanos / 1e9
    start, end = window
    return start <= fired and (end is None or fired <= end)


def trace_summary(trace: StoredTrace) -> nissa_pb2.TraceSummary:
    return nissa_pb2.TraceSummary(trace_id=trace.trace_id, spans=[span_summary(span) for span in trace.spans])


def span_summary(span: StoredSpan) -> nissa_pb2.SpanSummary:
    return nissa_pb2.SpanSummary(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        service_name=span.service_name,
        start_time=_timestamp(span.start_ns),
        end_time=_timestamp(span.end_ns),
        attributes=dict(span.attributes),
    )


def _timestamp(unix_nano: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
