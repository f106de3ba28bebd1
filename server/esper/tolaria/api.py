"""What Tolaria offers, as a protocol: the TolariaService API.

`esper.tolaria.runs.RunManager` implements it in the Tolaria server process;
`esper.clients.tolaria.TolariaClient` implements it over gRPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from esper.leyline.v1 import tolaria_pb2


class TolariaApi(Protocol):
    """The TolariaService rpcs, one method each, proto request in and proto response out."""

    def create_run(self, request: tolaria_pb2.CreateRunRequest) -> tolaria_pb2.CreateRunResponse:
        """Create and start a run; InvalidArgument naming the field for a bad config.

        Idempotent by the client-given run id: the same request again returns the same
        run; another request under a used id is AlreadyExists.
        """
        ...

    def get_run(self, request: tolaria_pb2.GetRunRequest) -> tolaria_pb2.GetRunResponse:
        """One run; NotFound (RUN_NOT_FOUND) for an unknown id."""
        ...

    def list_runs(self, request: tolaria_pb2.ListRunsRequest) -> tolaria_pb2.ListRunsResponse:
        """Runs, newest first, paged, optionally only those in one status."""
        ...

    def cancel_run(self, request: tolaria_pb2.CancelRunRequest) -> tolaria_pb2.CancelRunResponse:
        """Ask a run to stop at its next step; a finished run is returned as it is."""
        ...

    def stream_run_events(
        self, request: tolaria_pb2.StreamRunEventsRequest
    ) -> Iterator[tolaria_pb2.StreamRunEventsResponse]:
        """A run's events from `from_sequence`, then live until the run ends."""
        ...
