"""Nissa's OTLP trace intake in process: check and store an export, then pass it on.

The domain behind the OpenTelemetry collector TraceService (`TRACE_SERVICE`, hosted
like every Leyline service): `export` takes the ExportTraceServiceRequest and
returns the ExportTraceServiceResponse, like every Esper domain API. A malformed request is
refused whole (InvalidArgument naming the field) and stores nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from esper.leyline.v1.services import Service
from esper.nissa.config import SpanLimits
from esper.nissa.otlp_convert import spans_from_export
from esper.nissa.spans import SpanStore
from esper.observability import metrics

ExportRequest = trace_service_pb2.ExportTraceServiceRequest
# Where an accepted export goes next (e.g. SpanForwarder.submit); must not block.
ExportSink = Callable[[ExportRequest], object]


class SpanIntake:
    """Accepts OTLP trace exports into a SpanStore, and hands each accepted one to `forward`."""

    def __init__(self, store: SpanStore, forward: ExportSink | None = None, limits: SpanLimits | None = None) -> None:
        self._store = store
        self._forward = forward
        self._limits = limits if limits is not None else SpanLimits()
        self._lock = threading.Lock()
        self._received_spans = 0

    @property
    def received_spans(self) -> int:
        """Spans accepted since start (repeats of stored spans included)."""
        return self._received_spans

    def export(self, request: ExportRequest) -> trace_service_pb2.ExportTraceServiceResponse:
        spans = spans_from_export(request, self._limits)
        if spans:
            self._store.add(spans)
            with self._lock:
                self._received_spans += len(spans)
            metrics.NISSA_SPANS_RECEIVED.inc(len(spans))
            if self._forward is not None:
                self._forward(request)
        # No partial_success: a request is either stored whole or refused.
        return trace_service_pb2.ExportTraceServiceResponse()


# The OpenTelemetry collector's TraceService, typed by what answers its one rpc.
TRACE_SERVICE: Service[SpanIntake] = Service(trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"])
