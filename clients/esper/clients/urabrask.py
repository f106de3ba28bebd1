"""Remote Urabrask: the UrabraskApi methods over gRPC."""

from __future__ import annotations

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import urabrask_pb2, urabrask_pb2_grpc


class UrabraskClient(ServiceClient):
    """UrabraskService over the wire, with the same method names as the in-process UrabraskService."""

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, urabrask_pb2_grpc.UrabraskServiceStub, channel=channel)

    def get_validation_report(
        self, request: urabrask_pb2.GetValidationReportRequest, *, timeout: float | None = None
    ) -> urabrask_pb2.GetValidationReportResponse:
        response: urabrask_pb2.GetValidationReportResponse = self.call("GetValidationReport", request, timeout=timeout)
        return response

    def list_validation_reports(
        self, request: urabrask_pb2.ListValidationReportsRequest, *, timeout: float | None = None
    ) -> urabrask_pb2.ListValidationReportsResponse:
        response: urabrask_pb2.ListValidationReportsResponse = self.call(
            "ListValidationReports", request, timeout=timeout
        )
        return response
