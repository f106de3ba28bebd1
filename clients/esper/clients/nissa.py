"""Remote Nissa: the NissaApi methods over gRPC."""

from __future__ import annotations

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import nissa_pb2, nissa_pb2_grpc


class NissaClient(ServiceClient):
    """NissaService over the wire, with the same method names as the in-process NissaService."""

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, nissa_pb2_grpc.NissaServiceStub, channel=channel)

    def list_alerts(
        self, request: nissa_pb2.ListAlertsRequest, *, timeout: float | None = None
    ) -> nissa_pb2.ListAlertsResponse:
        response: nissa_pb2.ListAlertsResponse = self.call("ListAlerts", request, timeout=timeout)
        return response

    def get_run_summary(
        self, request: nissa_pb2.GetRunSummaryRequest, *, timeout: float | None = None
    ) -> nissa_pb2.GetRunSummaryResponse:
        response: nissa_pb2.GetRunSummaryResponse = self.call("GetRunSummary", request, timeout=timeout)
        return response

    def find_traces(
        self, request: nissa_pb2.FindTracesRequest, *, timeout: float | None = None
    ) -> nissa_pb2.FindTracesResponse:
        response: nissa_pb2.FindTracesResponse = self.call("FindTraces", request, timeout=timeout)
        return response
