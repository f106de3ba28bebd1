"""What Kasmina offers, as protocols: the KasminaService API and the event sink Tolaria provides.

`KasminaOperator` implements `KasminaApi` in the training process;
`esper.clients.kasmina.KasminaClient` implements it over gRPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from esper.kasmina.records import IsolationViolation
from esper.leyline.v1 import kasmina_pb2


class KasminaApi(Protocol):
    """The KasminaService rpcs, one method each, proto request in and proto response out."""

    def apply_command(self, request: kasmina_pb2.ApplyCommandRequest) -> kasmina_pb2.ApplyCommandResponse:
        """Apply one lifecycle command; idempotent by command id.

        InvalidArgument for a malformed command, NotFound (RUN_NOT_FOUND, SEED_NOT_FOUND),
        FailedPrecondition (ILLEGAL_TRANSITION, or an embargoed slot).
        """
        ...

    def list_seed_states(self, request: kasmina_pb2.ListSeedStatesRequest) -> kasmina_pb2.ListSeedStatesResponse:
        """Every seed's state, paged in layout order."""
        ...

    def stream_telemetry(
        self, request: kasmina_pb2.StreamTelemetryRequest
    ) -> Iterator[kasmina_pb2.StreamTelemetryResponse]:
        """Seed telemetry as each epoch ends, until the run ends (or the iterator is closed)."""
        ...


class KasminaEvents(Protocol):
    """Where Kasmina reports what cannot wait for the epoch boundary (Tolaria provides it)."""

    def isolation_violation(self, violation: IsolationViolation) -> None:
        """A TRAINING seed broke gradient isolation and has been culled: log, alert, emit."""
        ...
