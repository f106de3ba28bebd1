"""One germination is one trace: later commands for the adaptation hang under its germination."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from tests.support.kasmina import advance, germinate, mlp_setup

RELU = KasminaConfig(target_module_types=("ReLU",))


def test_loading_at_a_later_boundary_continues_the_germination_trace(spans: InMemorySpanExporter) -> None:
    _, operator, _, _ = mlp_setup(RELU)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("boundary-0"):
        germinate(operator, "1", "k-mlp", tag="a")
    with tracer.start_as_current_span("boundary-1") as later_boundary:
        advance(operator, "1", lc.LOADING, "a-load")
    finished = {
        span.name + ":" + str((span.attributes or {}).get("esper.command_id", "")): span
        for span in spans.get_finished_spans()
    }
    germination = finished["kasmina.apply_command:a-germ"]
    load = finished["kasmina.apply_command:a-load"]
    boundary_0 = finished["boundary-0:"]
    assert germination.parent is not None and germination.parent.span_id == boundary_0.context.span_id
    assert load.context.trace_id == germination.context.trace_id
    assert load.parent is not None and load.parent.span_id == germination.context.span_id
    assert [link.context.span_id for link in load.links] == [later_boundary.get_span_context().span_id]
    assert load.attributes is not None and load.attributes["esper.seed_id"] == "1"
    fetch, graft = finished["kasmina.kernel_fetch:"], finished["kasmina.graft:"]
    for phase in (fetch, graft):
        assert phase.parent is not None and phase.parent.span_id == load.context.span_id
        assert phase.attributes is not None and phase.attributes["esper.kernel_id"] == "k-mlp"


def test_a_seed_without_an_adaptation_is_traced_under_its_caller(spans: InMemorySpanExporter) -> None:
    _, operator, _, _ = mlp_setup(RELU)
    with trace.get_tracer("test").start_as_current_span("boundary") as boundary:
        germinate(operator, "1", "k-mlp", tag="b")
    (command,) = [span for span in spans.get_finished_spans() if span.name == "kasmina.apply_command"]
    assert command.parent is not None and command.parent.span_id == boundary.get_span_context().span_id
    assert command.attributes is not None
    assert command.attributes["esper.command_type"] == "COMMAND_TYPE_REQUEST_GERMINATION"
