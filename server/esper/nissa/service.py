"""Nissa in process: validates each request, then says the rpc is not built yet."""

from __future__ import annotations

from esper.errors import Unimplemented
from esper.leyline.v1 import nissa_pb2
from esper.nissa.validation import validate_find_traces, validate_get_run_summary, validate_list_alerts

NISSA_PENDING = (
    "is built by Nissa's own issue (OTLP receiver, alert store, run summaries); "
    "this Nissa server runs but stores nothing yet"
)


class NissaService:
    """The in-process Nissa (implements NissaApi): every rpc is Unimplemented for now."""

    def list_alerts(self, request: nissa_pb2.ListAlertsRequest) -> nissa_pb2.ListAlertsResponse:
        validate_list_alerts(request)
        raise Unimplemented(f"ListAlerts {NISSA_PENDING}")

    def get_run_summary(self, request: nissa_pb2.GetRunSummaryRequest) -> nissa_pb2.GetRunSummaryResponse:
        validate_get_run_summary(request)
        raise Unimplemented(f"GetRunSummary {NISSA_PENDING}")

    def find_traces(self, request: nissa_pb2.FindTracesRequest) -> nissa_pb2.FindTracesResponse:
        validate_find_traces(request)
        raise Unimplemented(f"FindTraces {NISSA_PENDING}")
