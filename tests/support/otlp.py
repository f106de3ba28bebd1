"""OTLP trace exports built by hand, for tests of Nissa's receiver and span store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from esper.nissa.spans import StoredSpan

BASE_NS = 1_700_000_000_000_000_000


def trace_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def otlp_span(
    trace: int,
    span: int,
    *,
    parent: int = 0,
    name: str = "work",
    start: int = 0,
    duration: int = 1000,
    attributes: Mapping[str, str] | None = None,
) -> trace_pb2.Span:
    """A span of trace `trace`; times are nanoseconds after BASE_NS."""
    return trace_pb2.Span(
        trace_id=trace_id(trace),
        span_id=span_id(span),
        parent_span_id=span_id(parent) if parent else b"",
        name=name,
        kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=BASE_NS + start,
        end_time_unix_nano=BASE_NS + start + duration,
        attributes=[
            common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))
            for key, value in (attributes or {}).items()
        ],
    )


def export_request(
    *groups: tuple[str, Sequence[trace_pb2.Span]],
) -> trace_service_pb2.ExportTraceServiceRequest:
    """One resource (with that service.name) per (service, spans) group, one scope each."""
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[
                        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))
                    ]
                ),
                scope_spans=[trace_pb2.ScopeSpans(spans=list(spans))],
            )
            for service, spans in groups
        ]
    )


def stored(
    trace: int,
    span: int,
    *,
    parent: int = 0,
    start: int = 0,
    service: str = "tolaria",
    attributes: Mapping[str, str] | None = None,
) -> StoredSpan:
    """A span as the store keeps it."""
    return StoredSpan(
        trace_id=trace_id(trace).hex(),
        span_id=span_id(span).hex(),
        parent_span_id=span_id(parent).hex() if parent else "",
        name=f"span-{span}",
        service_name=service,
        start_ns=BASE_NS + start,
        end_ns=BASE_NS + start + 10,
        attributes=dict(attributes or {}),
    )
