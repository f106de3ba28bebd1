"""Tracing setup for one process: the OTEL_* environment read once, an OTLP exporter behind a bounded queue.

Entry points (`esper serve`, `esper run`) call `TracingConfig.from_environ` and
`setup_tracing`; everything else only uses the OpenTelemetry API, which costs
nothing while no provider is installed. With no OTLP endpoint configured (or
`OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`) tracing stays off.

Spans leave the process through `BoundedSpanProcessor`: ending a span only
appends it to a bounded queue, and a worker thread exports batches. When the
collector (Nissa) is down, exports fail after their timeout, the queue fills, and
further spans are dropped and counted: a training step never waits for tracing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from esper import checks
from esper.errors import InvalidArgument

logger = logging.getLogger(__name__)

_EXPORTERS = ("otlp", "console", "none")
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


@dataclass(frozen=True)
class TracingConfig:
    """How one process exports spans. `endpoint` empty (and exporter "otlp") means tracing is off."""

    service_name: str
    exporter: str = "otlp"
    endpoint: str = ""
    insecure: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    export_timeout_seconds: float = 5.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    schedule_delay_seconds: float = 1.0
    sampler: str = "parentbased_always_on"
    sampler_ratio: float = 1.0
    resource_attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.service_name:
            raise InvalidArgument.for_field("OTEL_SERVICE_NAME", "must not be empty")
        if self.exporter not in _EXPORTERS:
            raise InvalidArgument.for_field(
                "OTEL_TRACES_EXPORTER", f"must be one of {_EXPORTERS}, got {self.exporter!r}"
            )
        if self.sampler not in _SAMPLERS:
            raise InvalidArgument.for_field("OTEL_TRACES_SAMPLER", f"must be one of {_SAMPLERS}, got {self.sampler!r}")
        checks.in_range("OTEL_TRACES_SAMPLER_ARG", self.sampler_ratio, 0.0, 1.0)
        checks.positive("OTEL_BSP_MAX_QUEUE_SIZE", self.max_queue_size)
        checks.in_range(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            self.max_export_batch_size,
            1,
            self.max_queue_size,
            note="(at most OTEL_BSP_MAX_QUEUE_SIZE)",
        )
        checks.positive("OTEL_BSP_SCHEDULE_DELAY", self.schedule_delay_seconds)
        checks.positive("OTEL_EXPORTER_OTLP_TIMEOUT", self.export_timeout_seconds)

    @property
    def enabled(self) -> bool:
        return self.exporter == "console" or (self.exporter == "otlp" and bool(self.endpoint))

    @classmethod
    def from_environ(cls, service_name: str, environ: Mapping[str, str]) -> TracingConfig:
        """The standard OTEL_* variables (durations in milliseconds, as the specification says)."""
        exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            exporter = "none"
        endpoint = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
        ).strip()
        insecure_text = environ.get("OTEL_EXPORTER_OTLP_TRACES_INSECURE") or environ.get("OTEL_EXPORTER_OTLP_INSECURE")
        insecure = (
            not endpoint.startswith("https://")
            if insecure_text is None
            else _flag(insecure_text, "OTEL_EXPORTER_OTLP_INSECURE")
        )
        attributes = _pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), "OTEL_RESOURCE_ATTRIBUTES")
        name = environ.get("OTEL_SERVICE_NAME") or dict(attributes).get("service.name") or service_name
        return cls(
            service_name=name,
            exporter=exporter,
            endpoint=endpoint,
            insecure=insecure,
            headers=_pairs(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""), "OTEL_EXPORTER_OTLP_HEADERS"),
            export_timeout_seconds=_millis(environ, "OTEL_EXPORTER_OTLP_TIMEOUT", 5000.0),
            max_queue_size=_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
            max_export_batch_size=_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
            schedule_delay_seconds=_millis(environ, "OTEL_BSP_SCHEDULE_DELAY", 1000.0),
            sampler=environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower(),
            sampler_ratio=_float(environ, "OTEL_TRACES_SAMPLER_ARG", 1.0),
            resource_attributes=dict(attributes),
        )


@dataclass(frozen=True)
class SpanExportStats:
    """Spans since the process started: exported, dropped (queue full or export failed), waiting now."""

    exported: int
    dropped: int
    failed_exports: int
    queued: int


class BoundedSpanProcessor(SpanProcessor):
    """Batches ended spans to an exporter from a worker thread; a full queue drops (and counts), never blocks."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_seconds: float = 1.0,
        on_exported: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._exporter = exporter
        self._max_queue = max_queue_size
        self._batch = max_export_batch_size
        self._delay = schedule_delay_seconds
        self._on_exported = on_exported
        self._on_dropped = on_dropped
        self._queue: deque[ReadableSpan] = deque()
        self._lock = threading.Condition()
        self._exporting = 0
        self._flush_requested = False
        self._stopping = False
        self._exported = self._dropped = self._failed_exports = 0
        self._worker = threading.Thread(target=self._run, name="esper-span-export", daemon=True)
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        del span, parent_context

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            if self._stopping or len(self._queue) >= self._max_queue:
                self._count_dropped(1)
                return
            self._queue.append(span)
            if len(self._queue) >= self._batch:
                self._lock.notify_all()

    def stats(self) -> SpanExportStats:
        with self._lock:
            return SpanExportStats(self._exported, self._dropped, self._failed_exports, len(self._queue))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            self._flush_requested = True
            self._lock.notify_all()
            while self._queue or self._exporting:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker.is_alive():
                    return False
                self._lock.wait(remaining)
        return True

    def shutdown(self) -> None:
        self.force_flush(timeout_millis=int(max(self._delay, 1.0) * 5000))
        with self._lock:
            self._stopping = True
            self._count_dropped(len(self._queue))
            self._queue.clear()
            self._lock.notify_all()
        self._worker.join(timeout=5.0)
        self._exporter.shutdown()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(
                    lambda: self._stopping or self._flush_requested or len(self._queue) >= self._batch,
                    timeout=self._delay,
                )
                if self._stopping and not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                if not self._queue:
                    self._flush_requested = False
                self._exporting = len(batch)
            if batch:
                self._export(batch)
            with self._lock:
                self._exporting = 0
                self._lock.notify_all()

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception:  # an exporter must not take the worker down with it
            logger.exception("span export raised")
            result = SpanExportResult.FAILURE
        with self._lock:
            if result == SpanExportResult.SUCCESS:
                self._exported += len(batch)
                if self._on_exported is not None:
                    self._on_exported(len(batch))
            else:
                self._failed_exports += 1
                self._count_dropped(len(batch))
                logger.debug("span export failed: %d spans dropped", len(batch))

    def _count_dropped(self, count: int) -> None:
        if count <= 0:
            return
        self._dropped += count
        if self._on_dropped is not None:
            self._on_dropped(count)


@dataclass
class Tracing:
    """The installed provider and its processor; `shutdown` flushes what is queued (bounded wait)."""

    config: TracingConfig
    provider: TracerProvider | None
    processor: BoundedSpanProcessor | None

    def stats(self) -> SpanExportStats:
        return self.processor.stats() if self.processor is not None else SpanExportStats(0, 0, 0, 0)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def build_provider(
    config: TracingConfig,
    exporter: SpanExporter | None = None,
    *,
    on_exported: Callable[[int], None] | None = None,
    on_dropped: Callable[[int], None] | None = None,
) -> tuple[TracerProvider, BoundedSpanProcessor]:
    """A provider for `config` (its own exporter unless one is given), not installed globally."""
    resource = Resource.create({**config.resource_attributes, "service.name": config.service_name})
    provider = TracerProvider(resource=resource, sampler=_sampler(config))
    processor = BoundedSpanProcessor(
        exporter if exporter is not None else _exporter(config),
        max_queue_size=config.max_queue_size,
        max_export_batch_size=config.max_export_batch_size,
        schedule_delay_seconds=config.schedule_delay_seconds,
        on_exported=on_exported,
        on_dropped=on_dropped,
    )
    provider.add_span_processor(processor)
    return provider, processor


def setup_tracing(config: TracingConfig) -> Tracing:
    """Install the process-wide tracer provider for `config`; a no-op when tracing is off."""
    if not config.enabled:
        return Tracing(config, None, None)
    from esper.observability import metrics

    provider, processor = build_provider(
        config,
        on_exported=metrics.SPANS_EXPORTED.inc,
        on_dropped=metrics.SPANS_DROPPED.inc,
    )
    trace.set_tracer_provider(provider)
    logger.info("tracing %s to %s", config.service_name, config.endpoint or config.exporter)
    return Tracing(config, provider, processor)


def _exporter(config: TracingConfig) -> SpanExporter:
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=config.service_name)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    endpoint = config.endpoint.removeprefix("http://").removeprefix("https://")
    return OTLPSpanExporter(
        endpoint=endpoint,
        insecure=config.insecure,
        headers=dict(config.headers) or None,
        timeout=config.export_timeout_seconds,
    )


def _sampler(config: TracingConfig) -> Sampler:
    base: Sampler
    if config.sampler.endswith("always_off"):
        base = ALWAYS_OFF
    elif config.sampler.endswith("traceidratio"):
        base = TraceIdRatioBased(config.sampler_ratio)
    else:
        base = ALWAYS_ON
    return ParentBased(base) if config.sampler.startswith("parentbased_") else base


def _pairs(text: str, name: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument.for_field(name, f"expected key=value pairs separated by commas, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _flag(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise InvalidArgument.for_field(name, f"must be true or false, got {text!r}")
    return value == "true"


def _number(environ: Mapping[str, str], name: str, default: float, parse: Callable[[str], Any]) -> Any:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        return parse(text)
    except ValueError:
        raise InvalidArgument.for_field(name, f"not a number: {text!r}") from None


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(environ, name, default, int))


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    return float(_number(environ, name, default, float))


def _millis(environ: Mapping[str, str], name: str, default: float) -> float:
    return _float(environ, name, default) / 1000.0
