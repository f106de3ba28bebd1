"""Remote Karn: the KarnApi methods over gRPC."""

from __future__ import annotations

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import karn_pb2, karn_pb2_grpc


class KarnClient(ServiceClient):
    """KarnService over the wire, with the same method names as the in-process KarnService."""

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, karn_pb2_grpc.KarnServiceStub, channel=channel)

    def list_templates(
        self, request: karn_pb2.ListTemplatesRequest, *, timeout: float | None = None
    ) -> karn_pb2.ListTemplatesResponse:
        response: karn_pb2.ListTemplatesResponse = self.call("ListTemplates", request, timeout=timeout)
        return response

    def get_template(
        self, request: karn_pb2.GetTemplateRequest, *, timeout: float | None = None
    ) -> karn_pb2.GetTemplateResponse:
        response: karn_pb2.GetTemplateResponse = self.call("GetTemplate", request, timeout=timeout)
        return response

    def query_templates(
        self, request: karn_pb2.QueryTemplatesRequest, *, timeout: float | None = None
    ) -> karn_pb2.QueryTemplatesResponse:
        response: karn_pb2.QueryTemplatesResponse = self.call("QueryTemplates", request, timeout=timeout)
        return response

    def submit_field_reports(
        self, request: karn_pb2.SubmitFieldReportsRequest, *, timeout: float | None = None
    ) -> karn_pb2.SubmitFieldReportsResponse:
        response: karn_pb2.SubmitFieldReportsResponse = self.call("SubmitFieldReports", request, timeout=timeout)
        return response
