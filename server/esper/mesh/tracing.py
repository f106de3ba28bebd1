"""OpenTelemetry on the gRPC edges: a server interceptor and a client channel wrapper.

Both use opentelemetry-instrumentation-grpc, so spans follow the OpenTelemetry rpc
conventions and carry W3C trace context in the call's metadata. Health checks,
reflection and OTLP exports are left untraced: they would drown the traces that
matter (and tracing an OTLP export would feed itself).
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor, client_interceptor, filters, grpcext

_UNTRACED = filters.any_of(
    filters.health_check(),
    filters.service_prefix("grpc.reflection."),
    filters.service_prefix("opentelemetry.proto.collector."),
)
_TRACED = filters.negate(_UNTRACED)


def tracing_server_interceptor() -> grpc.aio.ServerInterceptor:
    """A server span per rpc, continuing the caller's trace (global tracer provider)."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(filter_=_TRACED)
    return interceptor


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """`channel` with a client span per rpc and the trace context sent in its metadata."""
    interceptor: Any = client_interceptor(filter_=_TRACED)
    traced: grpc.Channel = grpcext.intercept_channel(channel, interceptor)
    return traced
