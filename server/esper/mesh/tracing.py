"""OpenTelemetry on the gRPC edges: a server interceptor and a client channel wrapper.

Both use opentelemetry-instrumentation-grpc, so spans follow the OpenTelemetry rpc
conventions and carry W3C trace context in the call's metadata. Health checks,
reflection and OTLP exports are left untraced: they would drown the traces that
matter (and tracing an OTLP export would feed itself). A worker's job polls are
traced only inside a trace that is already under way.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, client_interceptor, filters, grpcext

_UNTRACED = filters.any_of(
    filters.health_check(),
    filters.service_prefix("grpc.reflection."),
    filters.service_prefix("opentelemetry.proto.collector."),
)
# Workers poll for jobs all the time; a poll is traced only as part of a trace already under way.
_POLLS = filters.any_of(filters.method_name("ClaimCompileJob"), filters.method_name("ClaimValidationJob"))


def _client_traced(details: Any) -> bool:
    if _UNTRACED(details):
        return False
    return not _POLLS(details) or trace.get_current_span().get_span_context().is_valid


def _server_traced(details: Any) -> bool:
    if _UNTRACED(details):
        return False
    metadata = getattr(details, "invocation_metadata", None) or ()
    return not _POLLS(details) or any(key == "traceparent" for key, _ in metadata)


def tracing_server_interceptor() -> grpc.aio.ServerInterceptor:
    """A server span per rpc, continuing the caller's trace (global tracer provider)."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(filter_=_server_traced)
    return interceptor


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """`channel` with a client span per rpc and the trace context sent in its metadata."""
    interceptor: Any = client_interceptor(filter_=_client_traced)
    traced: grpc.Channel = grpcext.intercept_channel(channel, interceptor)
    return traced
