"""Consumers continue the publisher's trace: each handled message is a CONSUMER span under its envelope's context."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode

from esper.observability.spans import context_of, tracer
from esper.oona.api import Handler
from esper.oona.envelope import OpenedEnvelope

_TRACER = tracer(__name__)


def handle_traced(handler: Handler, opened: OpenedEnvelope, subject: str, durable: str) -> None:
    """Call `handler(opened)` inside a span `oona.consume <durable>` whose parent is the publishing span."""
    trace_context = opened.envelope.trace_context
    parent = context_of(trace_context) if trace_context.traceparent else None
    attributes = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.consumer.group.name": durable,
        "messaging.message.id": opened.idempotency_key,
        "esper.message_type": opened.message.DESCRIPTOR.name,
        "esper.source": opened.envelope.source,
    }
    with _TRACER.start_as_current_span(
        f"oona.consume {durable}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=True,
        set_status_on_exception=True,
    ) as span:
        handler(opened)
        span.set_status(Status(StatusCode.OK))
