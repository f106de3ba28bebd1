"""KasminaService for every live run of a Tolaria process: each call goes to its run's operator.

A Tolaria server trains several runs, each with its own KasminaOperator holding its
model; one KasminaService serves them all by dispatching on the request's run id.
A run joins when its trainer is built and leaves when it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from esper.errors import NotFound
from esper.kasmina.requests import (
    check_apply_command,
    check_list_seed_states,
    check_stream_telemetry,
)
from esper.leyline.v1 import kasmina_pb2
from esper.leyline.v1.services import KasminaServiceApi


class KasminaRouter:
    """The KasminaServiceApi over the live runs of this process."""

    def __init__(self) -> None:
        self._operators: dict[str, KasminaServiceApi] = {}
        self._lock = threading.Lock()

    def register(self, run_id: str, operator: KasminaServiceApi) -> None:
        with self._lock:
            self._operators[run_id] = operator

    def unregister(self, run_id: str) -> None:
        with self._lock:
            self._operators.pop(run_id, None)

    def apply_command(self, request: kasmina_pb2.ApplyCommandRequest) -> kasmina_pb2.ApplyCommandResponse:
        check_apply_command(request)
        return self._operator(request.command.run_id, "command.run_id").apply_command(request)

    def list_seed_states(self, request: kasmina_pb2.ListSeedStatesRequest) -> kasmina_pb2.ListSeedStatesResponse:
        check_list_seed_states(request)
        return self._operator(request.run_id, "run_id").list_seed_states(request)

    def stream_telemetry(
        self, request: kasmina_pb2.StreamTelemetryRequest
    ) -> Iterator[kasmina_pb2.StreamTelemetryResponse]:
        check_stream_telemetry(request)
        return self._operator(request.run_id, "run_id").stream_telemetry(request)

    def _operator(self, run_id: str, field: str) -> KasminaServiceApi:
        with self._lock:
            operator = self._operators.get(run_id)
        if operator is None:
            raise NotFound(f"{field}: no live run {run_id!r} in this Tolaria", reason="RUN_NOT_FOUND")
        return operator
