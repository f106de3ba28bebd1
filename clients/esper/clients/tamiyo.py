"""Remote Tamiyo: the TamiyoApi methods over gRPC."""

from __future__ import annotations

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import tamiyo_pb2, tamiyo_pb2_grpc


class TamiyoClient(ServiceClient):
    """TamiyoService over the wire, with the same method names as the in-process TamiyoController.

    A retried Step is safe: the controller answers a repeated request with the same
    response instead of deciding twice.
    """

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, tamiyo_pb2_grpc.TamiyoServiceStub, channel=channel)

    def step(self, request: tamiyo_pb2.StepRequest, *, timeout: float | None = None) -> tamiyo_pb2.StepResponse:
        response: tamiyo_pb2.StepResponse = self.call("Step", request, timeout=timeout)
        return response

    def get_status(
        self, request: tamiyo_pb2.GetStatusRequest, *, timeout: float | None = None
    ) -> tamiyo_pb2.GetStatusResponse:
        response: tamiyo_pb2.GetStatusResponse = self.call("GetStatus", request, timeout=timeout)
        return response

    def load_policy(
        self, request: tamiyo_pb2.LoadPolicyRequest, *, timeout: float | None = None
    ) -> tamiyo_pb2.LoadPolicyResponse:
        response: tamiyo_pb2.LoadPolicyResponse = self.call("LoadPolicy", request, timeout=timeout)
        return response

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest, *, timeout: float | None = None
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        response: tamiyo_pb2.ExportControllerStateResponse = self.call(
            "ExportControllerState", request, timeout=timeout
        )
        return response

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest, *, timeout: float | None = None
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        response: tamiyo_pb2.RestoreControllerStateResponse = self.call(
            "RestoreControllerState", request, timeout=timeout
        )
        return response
