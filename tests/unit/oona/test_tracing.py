"""Oona carries the publisher's trace: the consumer's span continues it."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from esper.leyline.v1 import bus_pb2
from esper.oona import subjects
from esper.oona.api import ConsumerSpec
from esper.oona.config import OonaConfig
from esper.oona.envelope import OpenedEnvelope
from esper.oona.memory import InProcessBus
from esper.state.samples import sample_field_report

SUBJECT = subjects.field_report_subject("run-1")


def test_a_message_sealed_in_a_span_is_handled_in_a_child_span_of_it(spans: InMemorySpanExporter) -> None:
    bus = InProcessBus(OonaConfig())
    seen: list[trace.SpanContext] = []

    def handle(opened: OpenedEnvelope) -> None:
        seen.append(trace.get_current_span().get_span_context())

    bus.subscribe(ConsumerSpec("karn", (SUBJECT,)), handle)
    with trace.get_tracer("test").start_as_current_span("tamiyo.step") as publisher:
        envelope = bus.seal(sample_field_report(), source="tamiyo", idempotency_key="r1")
    assert envelope.trace_context.traceparent
    bus.publish(SUBJECT, envelope)
    assert bus.flush(5)
    (consume,) = [span for span in spans.get_finished_spans() if span.name == "oona.consume karn"]
    assert consume.kind == SpanKind.CONSUMER
    assert consume.parent is not None and consume.parent.span_id == publisher.get_span_context().span_id
    assert seen == [consume.get_span_context()]
    assert consume.attributes is not None and consume.attributes["messaging.destination.name"] == SUBJECT
    bus.close()


def test_an_untraced_message_starts_a_trace_of_its_own(spans: InMemorySpanExporter) -> None:
    bus = InProcessBus(OonaConfig())
    bus.subscribe(ConsumerSpec("karn", (SUBJECT,)), lambda opened: None)
    envelope = bus.seal(sample_field_report(), source="tamiyo", idempotency_key="r2")
    assert envelope.trace_context == bus_pb2.TraceContext()
    bus.publish(SUBJECT, envelope)
    assert bus.flush(5)
    (consume,) = [span for span in spans.get_finished_spans() if span.name == "oona.consume karn"]
    assert consume.parent is None
    bus.close()
