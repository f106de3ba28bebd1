"""Tracing setup: OTEL_* parsing, the bounded processor (drops and counts, never blocks), W3C carriage."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from esper.errors import InvalidArgument
from esper.leyline.v1 import bus_pb2
from esper.observability.spans import context_of, current_trace_context, esper_attributes
from esper.observability.tracing import TracingConfig, build_provider


def test_tracing_is_off_without_an_endpoint_and_on_with_one() -> None:
    assert not TracingConfig.from_environ("urza", {}).enabled
    config = TracingConfig.from_environ("urza", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert config.enabled and config.service_name == "urza" and config.insecure


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_disabling_variables_turn_tracing_off(environ: dict[str, str]) -> None:
    config = TracingConfig.from_environ("urza", {"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4317", **environ})
    assert not config.enabled


def test_standard_variables_are_read_with_durations_in_milliseconds() -> None:
    config = TracingConfig.from_environ(
        "tamiyo",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces:4317",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=1, b = 2",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_BSP_MAX_QUEUE_SIZE": "64",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=lab",
            "OTEL_SERVICE_NAME": "tamiyo-a",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        },
    )
    assert config.endpoint == "https://traces:4317" and not config.insecure
    assert config.headers == (("a", "1"), ("b", "2"))
    assert config.export_timeout_seconds == 2.5 and config.schedule_delay_seconds == 0.2
    assert (config.max_queue_size, config.max_export_batch_size) == (64, 16)
    assert config.service_name == "tamiyo-a"
    assert config.resource_attributes == {"deployment.environment": "lab"}
    assert (config.sampler, config.sampler_ratio) == ("parentbased_traceidratio", 0.25)


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "many"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "9"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "OTEL_EXPORTER_OTLP_HEADERS"),
        ({"OTEL_EXPORTER_OTLP_INSECURE": "maybe"}, "OTEL_EXPORTER_OTLP_INSECURE"),
    ],
)
def test_bad_variables_are_refused_naming_the_variable(environ: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        TracingConfig.from_environ("urza", environ)
    assert caught.value.violations[0].field == field


class _StuckExporter(SpanExporter):
    """An exporter that hangs until released, like one whose collector stopped answering."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_a_full_queue_drops_and_counts_spans_and_never_waits_for_the_exporter() -> None:
    exporter = _StuckExporter()
    dropped: list[int] = []
    config = TracingConfig(
        "tolaria", endpoint="x:1", max_queue_size=4, max_export_batch_size=1, schedule_delay_seconds=0.05
    )
    provider, processor = build_provider(config, exporter, on_dropped=dropped.append)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("first"):
        pass
    assert exporter.entered.wait(10)  # the worker is now stuck inside export
    for index in range(10):
        with tracer.start_as_current_span(f"span-{index}"):
            pass
    stats = processor.stats()
    assert (stats.queued, stats.dropped) == (4, 6)
    assert sum(dropped) == 6
    exporter.release.set()
    assert processor.force_flush(10_000)
    assert processor.stats().exported == 5
    provider.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_spans_for_a_collector_that_is_down_are_dropped_and_counted() -> None:
    config = TracingConfig(
        "tolaria",
        endpoint=f"http://127.0.0.1:{_closed_port()}",
        export_timeout_seconds=0.5,
        max_queue_size=8,
        max_export_batch_size=8,
        schedule_delay_seconds=0.05,
    )
    provider, processor = build_provider(config)
    tracer = provider.get_tracer("test")
    for index in range(3):
        with tracer.start_as_current_span(f"span-{index}"):
            pass
    processor.force_flush(10_000)
    stats = processor.stats()
    assert stats.exported == 0 and stats.dropped == 3 and stats.failed_exports >= 1
    provider.shutdown()


def test_unsampled_spans_are_not_queued() -> None:
    exporter = InMemorySpanExporter()
    config = TracingConfig("tolaria", endpoint="x:1", sampler="always_off")
    provider, processor = build_provider(config, exporter)
    with provider.get_tracer("test").start_as_current_span("quiet"):
        pass
    processor.force_flush(5_000)
    assert exporter.get_finished_spans() == () and processor.stats().dropped == 0
    provider.shutdown()


def test_trace_context_round_trips_through_an_envelope_field(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    assert current_trace_context() is None
    with tracer.start_as_current_span("publisher") as publisher:
        carried = current_trace_context()
    assert carried is not None and carried.traceparent.startswith("00-")
    with tracer.start_as_current_span("consumer", context=context_of(carried)) as consumer:
        pass
    assert consumer.parent is not None
    assert consumer.parent.span_id == publisher.get_span_context().span_id
    assert consumer.get_span_context().trace_id == publisher.get_span_context().trace_id
    assert context_of(bus_pb2.TraceContext()) is not None  # an untraced envelope gives an empty context


def test_esper_attributes_leave_out_empty_ids() -> None:
    assert esper_attributes(run_id="r", seed_id="", epoch=0) == {"esper.run_id": "r", "esper.epoch": 0}
