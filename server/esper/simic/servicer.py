"""SimicService over gRPC: hands each request to the domain and returns its answer."""

from __future__ import annotations

import asyncio

import grpc

from esper.leyline.v1 import simic_pb2, simic_pb2_grpc
from esper.mesh.server import ServiceRegistration
from esper.simic.api import SimicApi

SIMIC_SERVICE_NAME: str = simic_pb2.DESCRIPTOR.services_by_name["SimicService"].full_name


class SimicServicer(simic_pb2_grpc.SimicServiceServicer):
    """Thin edge over a SimicApi; the domain validates, the mesh interceptor maps its errors.

    Domain calls run in a worker thread: they wait on the database.
    """

    def __init__(self, simic: SimicApi) -> None:
        self._simic = simic

    async def RecordFieldReports(
        self, request: simic_pb2.RecordFieldReportsRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.RecordFieldReportsResponse:
        return await asyncio.to_thread(self._simic.record_field_reports, request)

    async def ListFieldReports(
        self, request: simic_pb2.ListFieldReportsRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.ListFieldReportsResponse:
        return await asyncio.to_thread(self._simic.list_field_reports, request)

    async def TrainPolicy(
        self, request: simic_pb2.TrainPolicyRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.TrainPolicyResponse:
        return await asyncio.to_thread(self._simic.train_policy, request)

    async def GetPolicy(
        self, request: simic_pb2.GetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.GetPolicyResponse:
        return await asyncio.to_thread(self._simic.get_policy, request)

    async def ListPolicies(
        self, request: simic_pb2.ListPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.ListPoliciesResponse:
        return await asyncio.to_thread(self._simic.list_policies, request)

    async def RecordTransitions(
        self, request: simic_pb2.RecordTransitionsRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.RecordTransitionsResponse:
        return await asyncio.to_thread(self._simic.record_transitions, request)

    async def GetTrainingJob(
        self, request: simic_pb2.GetTrainingJobRequest, context: grpc.aio.ServicerContext
    ) -> simic_pb2.GetTrainingJobResponse:
        return await asyncio.to_thread(self._simic.get_training_job, request)


def simic_registration(simic: SimicApi) -> ServiceRegistration:
    """What build_server needs to host `simic` as esper.leyline.v1.SimicService."""
    return ServiceRegistration(
        servicer=SimicServicer(simic),
        add_to_server=simic_pb2_grpc.add_SimicServiceServicer_to_server,
        service_name=SIMIC_SERVICE_NAME,
    )
