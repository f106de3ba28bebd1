"""Sends accepted OTLP trace exports on to another OTLP/gRPC endpoint (Jaeger, a collector).

`submit` only puts the export on a bounded queue, so the receiver never waits for
the next hop; one background thread sends, retrying a failed export a bounded
number of times. An export that finds the queue full, fails for good, or is still
queued when the forwarder closes is dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from esper.nissa.config import ForwarderConfig
from esper.observability import metrics

logger = logging.getLogger(__name__)

ExportRequest = trace_service_pb2.ExportTraceServiceRequest
# Codes after which the same export may succeed on another try.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
_CLOSE_SECONDS = 5.0


def forward_target(endpoint: str) -> tuple[str, bool]:
    """`host:port`, `http://host:port` or `https://host:port` -> (gRPC target, use TLS)."""
    secure = endpoint.startswith("https://")
    target = endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or "/" in target:
        raise ValueError(f"forward endpoint must be host:port or http(s)://host:port, got {endpoint!r}")
    return target, secure


class SpanForwarder:
    """A bounded queue of exports and the thread that sends them to `config.endpoint`."""

    def __init__(self, config: ForwarderConfig) -> None:
        target, secure = forward_target(config.endpoint)
        self._config = config
        self._queue: queue.Queue[ExportRequest | None] = queue.Queue(maxsize=config.queue_size)
        self._lock = threading.Lock()
        self._dropped_exports = 0
        self._dropped_spans = 0
        self._forwarded_exports = 0
        self._closing = threading.Event()
        # Only the forwarding thread reads and writes it: warn once per outage, not per export.
        self._failing = False
        self._channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
        )
        self._stub = trace_service_pb2_grpc.TraceServiceStub(self._channel)
        self._thread = threading.Thread(target=self._run, name="nissa-forwarder", daemon=True)
        self._thread.start()
        logger.info("forwarding traces to %s", config.endpoint)

    @property
    def dropped_exports(self) -> int:
        """Exports dropped since start: queue full, sending failed, or unsent at close."""
        return self._dropped_exports

    @property
    def dropped_spans(self) -> int:
        """Spans in the dropped exports (what esper_nissa_forward_dropped_total counts)."""
        return self._dropped_spans

    @property
    def forwarded_exports(self) -> int:
        """Exports the next hop accepted."""
        return self._forwarded_exports

    def submit(self, request: ExportRequest) -> bool:
        """Queue `request` for sending; False (and counted as dropped) when the queue is full or closed."""
        if self._closing.is_set():
            self._drop(request, "forwarder closed")
            return False
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self._drop(request, "forward queue full")
            return False
        return True

    def close(self, timeout: float = _CLOSE_SECONDS) -> None:
        """Stop taking exports, give queued ones up to `timeout` seconds to go, drop the rest."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        while True:
            try:
                unsent = self._queue.get_nowait()
            except queue.Empty:
                break
            if unsent is not None:
                self._drop(unsent, "unsent at close")
        self._queue.put(None)
        self._thread.join(max(0.0, deadline - time.monotonic()) + self._config.timeout_seconds)
        self._channel.close()

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            if self._send(request):
                with self._lock:
                    self._forwarded_exports += 1
                if self._failing:
                    logger.info("forwarding to %s works again", self._config.endpoint)
                    self._failing = False
            else:
                self._drop(request, "next hop failed")

    def _send(self, request: ExportRequest) -> bool:
        backoff = self._config.backoff_seconds
        for attempt in range(1, self._config.attempts + 1):
            try:
                self._stub.Export(request, timeout=self._config.timeout_seconds)
                return True
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
                if code not in _RETRYABLE or attempt == self._config.attempts or self._closing.is_set():
                    if not self._failing:
                        logger.warning(
                            "forwarding to %s fails (%s), dropping exports until it works: %s",
                            self._config.endpoint,
                            code.name,
                            error,
                        )
                        self._failing = True
                    return False
            self._closing.wait(backoff)
            backoff *= 2
        return False

    def _drop(self, request: ExportRequest, why: str) -> None:
        count = span_count(request)
        with self._lock:
            self._dropped_exports += 1
            self._dropped_spans += count
        metrics.NISSA_FORWARD_DROPPED.inc(count)
        logger.debug("dropped a trace export of %d spans: %s", count, why)


def span_count(request: ExportRequest) -> int:
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
