"""OTLP trace export → stored spans, checking every span on the way.

The whole request is converted before anything is stored, so a malformed span
refuses the request as a whole: InvalidArgument naming the field path, e.g.
`resource_spans[0].scope_spans[1].spans[2].trace_id`. A request larger than its
limits (SpanLimits) is refused whole too; within a span, what is past the limits is
cut and counted, never stored as sent.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from esper.errors import InvalidArgument, ResourceExhausted
from esper.nissa.config import SpanLimits
from esper.nissa.spans import INDEXED_ATTRIBUTES, MAX_INDEXED_ID_LENGTH, StoredSpan
from esper.observability import metrics

SERVICE_NAME = "service.name"
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
# Timestamps are stored as signed 64-bit integers.
MAX_TIME_UNIX_NANO = 2**63 - 1
DEFAULT_LIMITS = SpanLimits()


def spans_from_export(
    request: trace_service_pb2.ExportTraceServiceRequest, limits: SpanLimits = DEFAULT_LIMITS
) -> list[StoredSpan]:
    """Every span of `request`, with its process's service.name; InvalidArgument on the first bad field,
    ResourceExhausted for an export over its limits."""
    _check_export_size(request, limits)
    spans: list[StoredSpan] = []
    for r, resource_spans in enumerate(request.resource_spans):
        service_name = _service_name(resource_spans.resource)[: limits.max_name_chars]
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for k, span in enumerate(scope_spans.spans):
                path = f"resource_spans[{r}].scope_spans[{s}].spans[{k}]"
                spans.append(stored_span(span, service_name, path, limits))
    return spans


def _check_export_size(request: trace_service_pb2.ExportTraceServiceRequest, limits: SpanLimits) -> None:
    size = request.ByteSize()
    count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    if size > limits.max_export_bytes or count > limits.max_spans_per_export:
        metrics.NISSA_EXPORTS_REFUSED.inc()
        raise ResourceExhausted(
            f"an export of {count} spans in {size} bytes; at most {limits.max_spans_per_export} spans "
            f"and {limits.max_export_bytes} bytes are accepted in one export"
        )


def stored_span(span: trace_pb2.Span, service_name: str, path: str, limits: SpanLimits = DEFAULT_LIMITS) -> StoredSpan:
    """One OTLP span as stored; `path` prefixes the field named by an InvalidArgument."""
    _check_id(span.trace_id, TRACE_ID_BYTES, f"{path}.trace_id")
    _check_id(span.span_id, SPAN_ID_BYTES, f"{path}.span_id")
    parent = span.parent_span_id
    if parent and len(parent) != SPAN_ID_BYTES:
        raise InvalidArgument.for_field(
            f"{path}.parent_span_id", f"must be empty or {SPAN_ID_BYTES} bytes, got {len(parent)}"
        )
    if not span.name:
        raise InvalidArgument.for_field(f"{path}.name", "is required")
    _check_times(span, path)
    attributes = _attributes(span.attributes, f"{path}.attributes", limits)
    return StoredSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        # An all-zero parent is the invalid span id, which means "no parent".
        parent_span_id=parent.hex() if any(parent) else "",
        name=_cut(span.name, limits.max_name_chars, "name"),
        service_name=service_name,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        kind=span.kind,
        status_code=span.status.code,
        status_message=_cut(span.status.message, limits.max_status_chars, "status_message"),
        attributes=attributes,
    )


def _check_id(value: bytes, size: int, field: str) -> None:
    if len(value) != size:
        raise InvalidArgument.for_field(field, f"must be {size} bytes, got {len(value)}")
    if not any(value):
        raise InvalidArgument.for_field(field, "must not be all zero")


def _check_times(span: trace_pb2.Span, path: str) -> None:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start == 0:
        raise InvalidArgument.for_field(f"{path}.start_time_unix_nano", "is required")
    if end == 0:
        raise InvalidArgument.for_field(f"{path}.end_time_unix_nano", "is required")
    for name, value in (("start_time_unix_nano", start), ("end_time_unix_nano", end)):
        if value > MAX_TIME_UNIX_NANO:
            raise InvalidArgument.for_field(f"{path}.{name}", f"must be at most {MAX_TIME_UNIX_NANO}")
    if end < start:
        raise InvalidArgument.for_field(
            f"{path}.end_time_unix_nano", f"is before start_time_unix_nano ({end} < {start})"
        )


def _service_name(resource: resource_pb2.Resource) -> str:
    for attribute in resource.attributes:
        if attribute.key == SERVICE_NAME:
            return attribute_text(attribute.value)
    return ""


def _attributes(attributes: Any, path: str, limits: SpanLimits) -> dict[str, str]:
    texts: dict[str, str] = {}
    dropped = 0
    for i, attribute in enumerate(attributes):
        if not attribute.key:
            # An OTLP key is required; a nameless value cannot be looked up, so it is not kept.
            continue
        if len(texts) >= limits.max_attributes:
            dropped += 1
            continue
        text = attribute_text(attribute.value, limits.max_value_chars)
        if attribute.key in INDEXED_ATTRIBUTES and len(text) > MAX_INDEXED_ID_LENGTH:
            raise InvalidArgument.for_field(
                f"{path}[{i}].value", f"{attribute.key} is longer than {MAX_INDEXED_ID_LENGTH} characters"
            )
        key = _cut(attribute.key, limits.max_key_chars, "attribute_key")
        texts[key] = _cut(text, limits.max_value_chars, "attribute_value")
    if dropped:
        metrics.NISSA_SPAN_PARTS_DROPPED.labels(part="attribute").inc(dropped)
    return texts


def _cut(text: str, limit: int, part: str) -> str:
    if len(text) <= limit:
        return text
    metrics.NISSA_SPAN_PARTS_DROPPED.labels(part=part).inc()
    return text[:limit]


def attribute_text(value: common_pb2.AnyValue, limit: int | None = None) -> str:
    """An attribute value as text: strings as they are, scalars as they print, lists and maps as JSON.

    With `limit`, a list or map past that size in the wire format is shown by its size only
    (rendering a huge nested value as JSON would cost what the limit is there to avoid).
    """
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind in ("array_value", "kvlist_value"):
        if limit is not None and value.ByteSize() > 4 * limit:
            return f"<{kind} of {value.ByteSize()} bytes, not stored>"
        return json.dumps(_json_value(value), sort_keys=True, separators=(",", ":"))
    plain = _json_value(value)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return "" if plain is None else str(plain)


def _json_value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_json_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _json_value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    return None
