"""What Nissa offers, as a protocol: the in-process NissaService and the remote NissaClient both fit it."""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import nissa_pb2


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
