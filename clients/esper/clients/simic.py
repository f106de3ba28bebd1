"""Remote Simic: the SimicApi methods over gRPC."""

from __future__ import annotations

import grpc

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import simic_pb2, simic_pb2_grpc


class SimicClient(ServiceClient):
    """SimicService over the wire, with the same method names as the in-process SimicService."""

    def __init__(self, config: ClientConfig, *, channel: grpc.Channel | None = None) -> None:
        super().__init__(config, simic_pb2_grpc.SimicServiceStub, channel=channel)

    def record_field_reports(
        self, request: simic_pb2.RecordFieldReportsRequest, *, timeout: float | None = None
    ) -> simic_pb2.RecordFieldReportsResponse:
        response: simic_pb2.RecordFieldReportsResponse = self.call("RecordFieldReports", request, timeout=timeout)
        return response

    def list_field_reports(
        self, request: simic_pb2.ListFieldReportsRequest, *, timeout: float | None = None
    ) -> simic_pb2.ListFieldReportsResponse:
        response: simic_pb2.ListFieldReportsResponse = self.call("ListFieldReports", request, timeout=timeout)
        return response

    def train_policy(
        self, request: simic_pb2.TrainPolicyRequest, *, timeout: float | None = None
    ) -> simic_pb2.TrainPolicyResponse:
        response: simic_pb2.TrainPolicyResponse = self.call("TrainPolicy", request, timeout=timeout)
        return response

    def get_policy(
        self, request: simic_pb2.GetPolicyRequest, *, timeout: float | None = None
    ) -> simic_pb2.GetPolicyResponse:
        response: simic_pb2.GetPolicyResponse = self.call("GetPolicy", request, timeout=timeout)
        return response

    def list_policies(
        self, request: simic_pb2.ListPoliciesRequest, *, timeout: float | None = None
    ) -> simic_pb2.ListPoliciesResponse:
        response: simic_pb2.ListPoliciesResponse = self.call("ListPolicies", request, timeout=timeout)
        return response

    def record_transitions(
        self, request: simic_pb2.RecordTransitionsRequest, *, timeout: float | None = None
    ) -> simic_pb2.RecordTransitionsResponse:
        response: simic_pb2.RecordTransitionsResponse = self.call("RecordTransitions", request, timeout=timeout)
        return response

    def get_training_job(
        self, request: simic_pb2.GetTrainingJobRequest, *, timeout: float | None = None
    ) -> simic_pb2.GetTrainingJobResponse:
        response: simic_pb2.GetTrainingJobResponse = self.call("GetTrainingJob", request, timeout=timeout)
        return response
