"""Nissa's OTLP TraceService over a real in-process server: the OpenTelemetry SDK's own OTLP/gRPC
exporter sends spans in, FindTraces gives them back with their parent links; malformed exports are
INVALID_ARGUMENT naming the field; accepted exports are forwarded to another OTLP endpoint, or dropped
and counted when it is down, without the receiver noticing."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from esper.clients import NissaClient
from esper.clients.base import ClientConfig, decode_rpc_error
from esper.errors import InvalidArgument
from esper.leyline.v1 import nissa_pb2
from esper.leyline.v1.services import NISSA_SERVICE
from esper.mesh.hosting import host
from esper.mesh.server import ServiceRegistration
from esper.nissa.config import ForwarderConfig, SpanStoreConfig, database_url
from esper.nissa.forwarder import SpanForwarder, forward_target
from esper.nissa.service import NissaService
from esper.nissa.spans import RUN_ID, SEED_ID, SpanStore
from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake
from esper.observability import metrics
from tests.support.otlp import export_request, otlp_span
from tests.support.servers import ServerFactory, ServerThread
from tests.support.waiting import eventually

WAIT_SECONDS = 30.0


@dataclass
class Nissa:
    server: ServerThread
    store: SpanStore
    client: NissaClient

    def find(self, run_id: str = "", seed_id: str = "") -> nissa_pb2.FindTracesResponse:
        return self.client.find_traces(nissa_pb2.FindTracesRequest(run_id=run_id, seed_id=seed_id))


@pytest.fixture
def start_nissa(grpc_server: ServerFactory) -> Iterator[Callable[..., Nissa]]:
    """Start a Nissa (NissaService + TraceService over an in-memory store), optionally forwarding."""
    opened: list[Nissa] = []

    def start(forwarder: SpanForwarder | None = None) -> Nissa:
        store = SpanStore.open(SpanStoreConfig(url=database_url(":memory:")))
        intake = SpanIntake(store, forward=forwarder.submit if forwarder is not None else None)
        server = grpc_server(
            [host(NISSA_SERVICE.bind(NissaService(store))), host(TRACE_SERVICE.bind(intake))], service_name="nissa"
        )
        nissa = Nissa(server, store, NissaClient(ClientConfig(address=server.address, deadline_seconds=30.0)))
        opened.append(nissa)
        return nissa

    yield start
    for nissa in opened:
        nissa.client.close()
        nissa.server.stop()
        nissa.store.close()


@pytest.fixture
def forwarders() -> Iterator[Callable[[str], SpanForwarder]]:
    started: list[SpanForwarder] = []

    def start(endpoint: str) -> SpanForwarder:
        forwarder = SpanForwarder(
            ForwarderConfig(endpoint=endpoint, queue_size=10, attempts=2, timeout_seconds=2.0, backoff_seconds=0.01)
        )
        started.append(forwarder)
        return forwarder

    yield start
    for forwarder in started:
        forwarder.close(timeout=1.0)


def _germination(port: int, run_id: str) -> tuple[str, str, str]:
    """One germination as two processes trace it (tamiyo decides, kasmina grafts), exported by the real
    OTLP exporter to 127.0.0.1:`port`. Returns the hex trace id, root span id and graft span id."""
    providers = []
    for service in ("tamiyo", "kasmina"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10))
        )
        providers.append(provider)
    tamiyo, kasmina = (provider.get_tracer("esper.test") for provider in providers)
    with (
        tamiyo.start_as_current_span("tamiyo.decide", attributes={RUN_ID: run_id}) as root,
        kasmina.start_as_current_span("kasmina.graft", attributes={SEED_ID: "seed-3"}) as graft,
    ):
        pass
    for provider in providers:
        provider.shutdown()
    return (
        trace.format_trace_id(root.get_span_context().trace_id),
        trace.format_span_id(root.get_span_context().span_id),
        trace.format_span_id(graft.get_span_context().span_id),
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_spans_from_the_otlp_exporter_come_back_as_one_trace_with_parent_links(
    start_nissa: Callable[..., Nissa],
) -> None:
    nissa = start_nissa()
    trace_id, root_id, graft_id = _germination(nissa.server.port, "run-7")
    [found] = nissa.find(run_id="run-7").traces
    assert found.trace_id == trace_id
    assert [(s.name, s.service_name, s.span_id, s.parent_span_id) for s in found.spans] == [
        ("tamiyo.decide", "tamiyo", root_id, ""),
        ("kasmina.graft", "kasmina", graft_id, root_id),
    ]
    assert found.spans[1].attributes[SEED_ID] == "seed-3"
    assert found.spans[0].end_time.ToNanoseconds() >= found.spans[1].end_time.ToNanoseconds()
    # The seed id is on the graft span only; the whole trace still matches.
    assert [s.span_id for s in nissa.find(seed_id="seed-3").traces[0].spans] == [root_id, graft_id]
    assert nissa.find(run_id="run-8").traces == []


def test_a_malformed_export_is_invalid_naming_the_field_and_the_server_keeps_serving(
    start_nissa: Callable[..., Nissa],
) -> None:
    nissa = start_nissa()
    bad = otlp_span(1, 2, attributes={RUN_ID: "run-1"})
    bad.trace_id = b"\x01" * 3
    request = export_request(("tolaria", [otlp_span(1, 1, attributes={RUN_ID: "run-1"})]), ("kasmina", [bad]))
    with grpc.insecure_channel(nissa.server.address) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Export(request, timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        error = decode_rpc_error(raised.value)
        assert isinstance(error, InvalidArgument)
        assert [v.field for v in error.violations] == ["resource_spans[1].scope_spans[0].spans[0].trace_id"]
        # Nothing of the refused request was stored, and the next export is accepted.
        assert nissa.find(run_id="run-1").traces == []
        stub.Export(export_request(("tolaria", [otlp_span(1, 1, attributes={RUN_ID: "run-1"})])), timeout=30)
    assert len(nissa.find(run_id="run-1").traces) == 1


def test_accepted_exports_are_forwarded_to_the_next_otlp_endpoint(
    start_nissa: Callable[..., Nissa], forwarders: Callable[[str], SpanForwarder]
) -> None:
    downstream = start_nissa()
    forwarder = forwarders(f"http://{downstream.server.address}")
    upstream = start_nissa(forwarder)
    trace_id, root_id, _ = _germination(upstream.server.port, "run-f")
    eventually(lambda: downstream.store.count() == 2, timeout=WAIT_SECONDS)
    [copied] = downstream.find(run_id="run-f").traces
    [original] = upstream.find(run_id="run-f").traces
    assert copied == original
    assert (copied.trace_id, [s.parent_span_id for s in copied.spans]) == (trace_id, ["", root_id])
    assert (forwarder.forwarded_exports, forwarder.dropped_exports) == (2, 0)


def test_with_the_forward_target_down_exports_are_dropped_and_counted_and_the_receiver_answers(
    start_nissa: Callable[..., Nissa], forwarders: Callable[[str], SpanForwarder]
) -> None:
    dropped_before = metrics.REGISTRY.get_sample_value("esper_nissa_forward_dropped_total") or 0.0
    forwarder = forwarders(f"127.0.0.1:{_closed_port()}")
    nissa = start_nissa(forwarder)
    with grpc.insecure_channel(nissa.server.address) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for n in range(1, 4):
            spans = [otlp_span(n, 1, attributes={RUN_ID: "run-d"}), otlp_span(n, 2, parent=1)]
            stub.Export(export_request(("tolaria", spans)), timeout=30)
    eventually(lambda: forwarder.dropped_exports == 3, timeout=WAIT_SECONDS)
    assert (forwarder.dropped_spans, forwarder.forwarded_exports) == (6, 0)
    assert metrics.REGISTRY.get_sample_value("esper_nissa_forward_dropped_total") == dropped_before + 6
    assert len(nissa.find(run_id="run-d").traces) == 3


class _StuckCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP endpoint that takes the first export and answers only when released."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.release = threading.Event()

    async def Export(self, request: object, context: grpc.aio.ServicerContext) -> object:
        self.received.set()
        await asyncio.to_thread(self.release.wait, WAIT_SECONDS)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_a_full_forward_queue_drops_at_once_instead_of_blocking_the_receiver(
    grpc_server: ServerFactory, start_nissa: Callable[..., Nissa]
) -> None:
    collector = _StuckCollector()
    stuck = grpc_server(
        [
            ServiceRegistration(
                TRACE_SERVICE.full_name,
                lambda server: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server),
            )
        ]
    )
    forwarder = SpanForwarder(ForwarderConfig(endpoint=stuck.address, queue_size=1, timeout_seconds=WAIT_SECONDS))
    nissa = start_nissa(forwarder)
    try:
        with grpc.insecure_channel(nissa.server.address) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            stub.Export(export_request(("tolaria", [otlp_span(1, 1, attributes={RUN_ID: "q"})])), timeout=30)
            assert collector.received.wait(WAIT_SECONDS)
            # The sender is busy with the first export: one more fits the queue, the rest are dropped.
            for n in range(2, 5):
                stub.Export(export_request(("tolaria", [otlp_span(n, 1, attributes={RUN_ID: "q"})])), timeout=30)
        assert (forwarder.dropped_exports, forwarder.dropped_spans) == (2, 2)
        assert len(nissa.find(run_id="q").traces) == 4
        collector.release.set()
        eventually(lambda: forwarder.forwarded_exports == 2, timeout=WAIT_SECONDS)
    finally:
        collector.release.set()
        forwarder.close(timeout=1.0)


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("127.0.0.1:4317", ("127.0.0.1:4317", False)),
        ("http://jaeger:4317", ("jaeger:4317", False)),
        ("https://collector.example:443/", ("collector.example:443", True)),
    ],
)
def test_forward_endpoints_name_a_grpc_target(endpoint: str, target: tuple[str, bool]) -> None:
    assert forward_target(endpoint) == target


@pytest.mark.parametrize("endpoint", ["jaeger", "http://jaeger", "jaeger:port", "http://jaeger:4317/v1/traces"])
def test_a_bad_forward_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        forward_target(endpoint)
