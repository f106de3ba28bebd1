"""Span names, attributes and trace-context carriage shared by every subsystem.

Domain code traces through the OpenTelemetry API only (a no-op until an entry
point installs a provider). The `esper.*` attributes are what Nissa indexes to
find a run's, a seed's or a command's traces.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from esper.leyline.v1 import bus_pb2

RUN_ID = "esper.run_id"
SEED_ID = "esper.seed_id"
COMMAND_ID = "esper.command_id"
EPOCH = "esper.epoch"

_W3C = TraceContextTextMapPropagator()


def tracer(name: str) -> trace.Tracer:
    """The tracer of one instrumented module (named like its logger)."""
    return trace.get_tracer(name)


def esper_attributes(
    *, run_id: str = "", seed_id: str = "", command_id: str = "", epoch: int | None = None
) -> dict[str, str | int]:
    """The esper.* attributes that are set (empty ids are left out, so they never match a query)."""
    attributes: dict[str, str | int] = {}
    for key, value in ((RUN_ID, run_id), (SEED_ID, seed_id), (COMMAND_ID, command_id)):
        if value:
            attributes[key] = value
    if epoch is not None:
        attributes[EPOCH] = epoch
    return attributes


def current_trace_context() -> bus_pb2.TraceContext | None:
    """The current span's W3C trace context for an envelope, or None outside any recorded span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    if "traceparent" not in carrier:
        return None
    return bus_pb2.TraceContext(traceparent=carrier["traceparent"], tracestate=carrier.get("tracestate", ""))


def context_of(trace_context: bus_pb2.TraceContext) -> otel_context.Context:
    """An OpenTelemetry context whose parent is the span that published the envelope (if any)."""
    carrier = {"traceparent": trace_context.traceparent}
    if trace_context.tracestate:
        carrier["tracestate"] = trace_context.tracestate
    return _W3C.extract(carrier)
