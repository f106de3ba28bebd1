"""The OpenTelemetry collector TraceService over gRPC: OTLP/gRPC trace export into Nissa.

A thin edge: each Export goes to the SpanIntake; its InvalidArgument becomes
INVALID_ARGUMENT (with the field) through the mesh's error interceptor.
"""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from esper.mesh.server import ServiceRegistration
from esper.nissa.trace_intake import SpanIntake

TRACE_SERVICE_NAME: str = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Hands every OTLP export to the intake, off the event loop (storing writes to the database)."""

    def __init__(self, intake: SpanIntake) -> None:
        self._intake = intake

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        return await asyncio.to_thread(self._intake.export, request)


def trace_registration(intake: SpanIntake) -> ServiceRegistration:
    """What build_server needs to host the OTLP TraceService over `intake`."""
    return ServiceRegistration(
        servicer=TraceReceiver(intake),
        add_to_server=trace_service_pb2_grpc.add_TraceServiceServicer_to_server,
        service_name=TRACE_SERVICE_NAME,
    )
