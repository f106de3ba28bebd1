"""Remote Tolaria: the TolariaApi methods over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import tolaria_pb2, tolaria_pb2_grpc


class TolariaClient(ServiceClient):
    """TolariaService over the wire, with the same method names as the in-process RunManager.

    A retried CreateRun is safe when the request carries a run id: the server answers
    a repeat of the same request with the run it already created.
    """

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, tolaria_pb2_grpc.TolariaServiceStub, channel=channel)

    def create_run(
        self, request: tolaria_pb2.CreateRunRequest, *, timeout: float | None = None
    ) -> tolaria_pb2.CreateRunResponse:
        response: tolaria_pb2.CreateRunResponse = self.call("CreateRun", request, timeout=timeout)
        return response

    def get_run(
        self, request: tolaria_pb2.GetRunRequest, *, timeout: float | None = None
    ) -> tolaria_pb2.GetRunResponse:
        response: tolaria_pb2.GetRunResponse = self.call("GetRun", request, timeout=timeout)
        return response

    def list_runs(
        self, request: tolaria_pb2.ListRunsRequest, *, timeout: float | None = None
    ) -> tolaria_pb2.ListRunsResponse:
        response: tolaria_pb2.ListRunsResponse = self.call("ListRuns", request, timeout=timeout)
        return response

    def cancel_run(
        self, request: tolaria_pb2.CancelRunRequest, *, timeout: float | None = None
    ) -> tolaria_pb2.CancelRunResponse:
        response: tolaria_pb2.CancelRunResponse = self.call("CancelRun", request, timeout=timeout)
        return response

    def stream_run_events(
        self, request: tolaria_pb2.StreamRunEventsRequest, *, timeout: float | None = None
    ) -> Iterator[tolaria_pb2.StreamRunEventsResponse]:
        """Events as the run emits them. `timeout` bounds the whole stream (a run's length: pass one)."""
        yield from self.stream("StreamRunEvents", request, timeout=timeout)
