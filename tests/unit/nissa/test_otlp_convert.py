"""OTLP export → stored spans: values as Nissa keeps them, and every malformed field named by its path."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from esper.errors import InvalidArgument, ResourceExhausted
from esper.nissa.config import SpanLimits, SpanStoreConfig, database_url
from esper.nissa.otlp_convert import attribute_text, spans_from_export
from esper.nissa.spans import RUN_ID, SpanStore
from esper.nissa.trace_intake import SpanIntake
from esper.observability import metrics
from tests.support.otlp import BASE_NS, export_request, otlp_span, span_id, trace_id

BAD_SPAN = "resource_spans[1].scope_spans[0].spans[1]"


@pytest.fixture
def store() -> Iterator[SpanStore]:
    opened = SpanStore.open(SpanStoreConfig(url=database_url(":memory:")))
    yield opened
    opened.close()


def test_spans_keep_hex_ids_parent_service_name_times_and_attributes() -> None:
    request = export_request(
        ("tamiyo", [otlp_span(7, 1, name="decide", attributes={RUN_ID: "run-1"})]),
        ("kasmina", [otlp_span(7, 2, parent=1, name="graft", start=40, duration=5)]),
    )
    decide, graft = spans_from_export(request)
    assert (decide.trace_id, decide.span_id, decide.parent_span_id) == (trace_id(7).hex(), span_id(1).hex(), "")
    assert (decide.name, decide.service_name, decide.attributes) == ("decide", "tamiyo", {RUN_ID: "run-1"})
    assert (graft.parent_span_id, graft.service_name) == (span_id(1).hex(), "kasmina")
    assert (graft.start_ns, graft.end_ns, graft.kind) == (BASE_NS + 40, BASE_NS + 45, trace_pb2.Span.SPAN_KIND_INTERNAL)


def test_an_all_zero_parent_means_a_root_span() -> None:
    span = otlp_span(1, 1)
    span.parent_span_id = bytes(8)
    [converted] = spans_from_export(export_request(("x", [span])))
    assert converted.parent_span_id == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (common_pb2.AnyValue(string_value="abc"), "abc"),
        (common_pb2.AnyValue(int_value=-3), "-3"),
        (common_pb2.AnyValue(bool_value=True), "true"),
        (common_pb2.AnyValue(double_value=0.5), "0.5"),
        (common_pb2.AnyValue(bytes_value=b"\x01\xff"), "01ff"),
        (
            common_pb2.AnyValue(
                array_value=common_pb2.ArrayValue(
                    values=[common_pb2.AnyValue(int_value=1), common_pb2.AnyValue(string_value="b")]
                )
            ),
            '[1,"b"]',
        ),
        (common_pb2.AnyValue(), ""),
    ],
)
def test_attribute_values_become_text(value: common_pb2.AnyValue, text: str) -> None:
    assert attribute_text(value) == text


def _set(field: str, value: object) -> Callable[[trace_pb2.Span], None]:
    return lambda span: setattr(span, field, value)


def _long_run_id(span: trace_pb2.Span) -> None:
    span.attributes.add(key="other", value=common_pb2.AnyValue(string_value="x"))
    span.attributes.add(key=RUN_ID, value=common_pb2.AnyValue(string_value="r" * 257))


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (_set("trace_id", b"\x01" * 15), "trace_id"),
        (_set("trace_id", bytes(16)), "trace_id"),
        (_set("trace_id", b""), "trace_id"),
        (_set("span_id", b"\x01" * 9), "span_id"),
        (_set("span_id", bytes(8)), "span_id"),
        (_set("parent_span_id", b"\x01" * 4), "parent_span_id"),
        (_set("name", ""), "name"),
        (_set("start_time_unix_nano", 0), "start_time_unix_nano"),
        (_set("end_time_unix_nano", 0), "end_time_unix_nano"),
        (_set("end_time_unix_nano", BASE_NS - 1), "end_time_unix_nano"),
        (_set("end_time_unix_nano", 2**64 - 1), "end_time_unix_nano"),
        (_long_run_id, "attributes[1].value"),
    ],
)
def test_a_malformed_span_is_invalid_naming_its_field_path(spoil: Callable[[trace_pb2.Span], None], field: str) -> None:
    bad = otlp_span(2, 2)
    spoil(bad)
    request = export_request(("a", [otlp_span(1, 1)]), ("b", [otlp_span(2, 1), bad]))
    with pytest.raises(InvalidArgument) as raised:
        spans_from_export(request)
    assert [v.field for v in raised.value.violations] == [f"{BAD_SPAN}.{field}"]


def test_a_malformed_request_stores_nothing_and_is_not_forwarded(store: SpanStore) -> None:
    forwarded: list[trace_service_pb2.ExportTraceServiceRequest] = []
    intake = SpanIntake(store, forward=forwarded.append)
    bad = otlp_span(2, 3, attributes={RUN_ID: "run"})
    bad.name = ""
    with pytest.raises(InvalidArgument):
        intake.export(export_request(("a", [otlp_span(1, 1, attributes={RUN_ID: "run"}), bad])))
    assert (store.count(), forwarded, intake.received_spans) == (0, [], 0)


def test_an_accepted_request_is_stored_counted_and_forwarded(store: SpanStore) -> None:
    forwarded: list[trace_service_pb2.ExportTraceServiceRequest] = []
    intake = SpanIntake(store, forward=forwarded.append)
    received_before = metrics.REGISTRY.get_sample_value("esper_nissa_spans_received_total") or 0.0
    request = export_request(("a", [otlp_span(1, 1, attributes={RUN_ID: "run"}), otlp_span(1, 2, parent=1)]))
    response = intake.export(request)
    assert not response.HasField("partial_success")
    assert forwarded == [request]
    assert (store.count(), intake.received_spans) == (2, 2)
    assert metrics.REGISTRY.get_sample_value("esper_nissa_spans_received_total") == received_before + 2


def test_an_empty_request_is_accepted_and_not_forwarded(store: SpanStore) -> None:
    forwarded: list[trace_service_pb2.ExportTraceServiceRequest] = []
    SpanIntake(store, forward=forwarded.append).export(trace_service_pb2.ExportTraceServiceRequest())
    assert (store.count(), forwarded) == (0, [])


def _dropped(part: str) -> float:
    return metrics.REGISTRY.get_sample_value("esper_nissa_span_parts_dropped_total", {"part": part}) or 0.0


def test_an_oversized_span_is_stored_cut_to_its_limits_and_the_cuts_counted(store: SpanStore) -> None:
    limits = SpanLimits()
    before = {part: _dropped(part) for part in ("attribute", "name", "attribute_key", "attribute_value")}
    attributes = {f"key{i}": "v" for i in range(14_000)}
    attributes["k" * 1000] = "x" * 100_000
    span = otlp_span(1, 1, name="n" * 5_000_000, attributes=attributes)
    span.attributes.insert(0, span.attributes.pop())  # the long key and value come first, so they are kept
    SpanIntake(store, limits=limits).export(export_request(("svc", [span])))
    (stored,) = spans_from_export(export_request(("svc", [span])), limits)
    assert len(stored.name) == limits.max_name_chars
    assert len(stored.attributes) == limits.max_attributes
    assert max(len(key) for key in stored.attributes) == limits.max_key_chars
    assert max(len(value) for value in stored.attributes.values()) == limits.max_value_chars
    assert store.count() == 1
    assert _dropped("attribute") - before["attribute"] == 2 * (14_001 - limits.max_attributes)
    assert _dropped("name") - before["name"] == 2


def test_an_export_over_its_limits_is_refused_whole_and_stores_nothing(store: SpanStore) -> None:
    intake = SpanIntake(store, limits=SpanLimits(max_spans_per_export=3, max_export_bytes=10_000))
    with pytest.raises(ResourceExhausted, match="at most 3 spans"):
        intake.export(export_request(("a", [otlp_span(1, n) for n in range(1, 5)])))
    with pytest.raises(ResourceExhausted, match="10000 bytes"):
        intake.export(export_request(("a", [otlp_span(1, 1, name="n" * 20_000)])))
    assert store.count() == 0
