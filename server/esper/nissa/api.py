"""What Nissa offers, as a protocol: the in-process NissaService and the remote NissaClient both fit it."""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import alert_pb2, nissa_pb2


class NissaApi(Protocol):
    """The NissaService rpcs, one method each, proto request in and proto response out."""

    def list_alerts(self, request: nissa_pb2.ListAlertsRequest) -> nissa_pb2.ListAlertsResponse:
        """Alerts, newest first, paged."""
        ...

    def get_run_summary(self, request: nissa_pb2.GetRunSummaryRequest) -> nissa_pb2.GetRunSummaryResponse:
        """A run's summary as Nissa has observed it."""
        ...

    def find_traces(self, request: nissa_pb2.FindTracesRequest) -> nissa_pb2.FindTracesResponse:
        """Stored traces by run, seed or command id."""
        ...


class BoardApi(Protocol):
    """What NissaService needs of the run board (esper.nissa.board.RunBoard)."""

    def summary(self, run_id: str) -> nissa_pb2.GetRunSummaryResponse:
        """The run's summary as observed on the bus, its alerts left empty; NotFound for an unknown run."""
        ...


class AlertSource(Protocol):
    """What NissaService needs of the alert engine (esper.nissa.alerts.AlertEngine)."""

    def alerts(self, state: alert_pb2.AlertState = alert_pb2.ALERT_STATE_UNSPECIFIED) -> list[alert_pb2.Alert]:
        """Alerts in `state` (every state when unspecified), newest first."""
        ...
