"""Remote Kasmina: the KasminaApi methods over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import kasmina_pb2, kasmina_pb2_grpc


class KasminaClient(ServiceClient):
    """KasminaService over the wire, with the same method names as the in-process KasminaOperator."""

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, kasmina_pb2_grpc.KasminaServiceStub, channel=channel)

    def apply_command(
        self, request: kasmina_pb2.ApplyCommandRequest, *, timeout: float | None = None
    ) -> kasmina_pb2.ApplyCommandResponse:
        response: kasmina_pb2.ApplyCommandResponse = self.call("ApplyCommand", request, timeout=timeout)
        return response

    def list_seed_states(
        self, request: kasmina_pb2.ListSeedStatesRequest, *, timeout: float | None = None
    ) -> kasmina_pb2.ListSeedStatesResponse:
        response: kasmina_pb2.ListSeedStatesResponse = self.call("ListSeedStates", request, timeout=timeout)
        return response

    def stream_telemetry(
        self, request: kasmina_pb2.StreamTelemetryRequest, *, timeout: float | None = None
    ) -> Iterator[kasmina_pb2.StreamTelemetryResponse]:
        """Reports as epochs end. `timeout` bounds the whole stream (a run's length: pass one)."""
        yield from self.stream("StreamTelemetry", request, timeout=timeout)
