"""What tracing costs a training process, measured side by side in one run.

A span is started and ended (with the esper.* attributes a Kasmina command carries)
by three tracers in alternating rounds: the no-op tracer (tracing off, the default
without OTEL_EXPORTER_OTLP_ENDPOINT), the SDK with the bounded processor exporting to
a collector that is down (Nissa stopped: exports fail, the queue fills, spans are
dropped and counted), and the SDK exporting to a live OTLP receiver (a real Nissa
TraceService on loopback). Ratios are of the medians; it also prints what one
epoch's spans cost against the 18 ms hook budget. Never part of the tests.

    .venv/bin/python bench/tracing_bench.py [--rounds N] [--spans N]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace

from esper.mesh.config import ServerConfig
from esper.mesh.hosting import host
from esper.mesh.server import start_server
from esper.nissa.config import SpanStoreConfig
from esper.nissa.spans import SpanStore
from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake
from esper.observability.spans import esper_attributes
from esper.observability.tracing import BoundedSpanProcessor, TracingConfig, build_provider

# Spans in one traced epoch of a mesh run with a germination (epoch, train, validate, hook,
# Step client, command, kernel fetch, graft and their rpc spans), rounded up.
SPANS_PER_EPOCH = 20
HOOK_BUDGET_MS = 18.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _span_loop(tracer: trace.Tracer, count: int) -> Callable[[], float]:
    attributes = esper_attributes(run_id="run-bench", seed_id="blocks.0", command_id="cmd-1", epoch=3)

    def run() -> float:
        started = time.perf_counter()
        for _ in range(count):
            with tracer.start_as_current_span("kasmina.apply_command", attributes=attributes):
                pass
        return (time.perf_counter() - started) / count * 1e6

    return run


def _live_receiver(folder: Path) -> tuple[int, Callable[[], None]]:
    """A real Nissa TraceService on a free loopback port, served from its own event-loop thread."""
    store = SpanStore.open(SpanStoreConfig(url=f"sqlite:///{folder / 'spans.db'}", max_spans=1_000_000))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    config = ServerConfig(service_name="nissa")
    running = asyncio.run_coroutine_threadsafe(
        start_server(config, [host(TRACE_SERVICE.bind(SpanIntake(store)))]), loop
    ).result(30)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(running.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        store.close()

    return running.port, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--spans", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port, stop = _live_receiver(Path(tmp))
        down = TracingConfig("tolaria", endpoint=f"http://127.0.0.1:{_free_port()}", export_timeout_seconds=0.5)
        live = TracingConfig("tolaria", endpoint=f"http://127.0.0.1:{port}")
        providers = {name: build_provider(config) for name, config in (("nissa down", down), ("nissa live", live))}
        loops = {"off (no-op)": _span_loop(trace.NoOpTracer(), args.spans)}
        loops.update(
            {name: _span_loop(provider.get_tracer("bench"), args.spans) for name, (provider, _) in providers.items()}
        )
        times: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, run in loops.items():
                times[name].append(run())
        processors: dict[str, BoundedSpanProcessor] = {name: p for name, (_, p) in providers.items()}
        for processor in processors.values():
            processor.force_flush(30_000)
        print(f"# Tracing cost per span ({args.rounds} rounds x {args.spans} spans, medians)\n")
        print("| tracer | us per span | vs off | one epoch's spans (~20) | share of the 18 ms hook budget |")
        print("|---|---:|---:|---:|---:|")
        base = statistics.median(times["off (no-op)"])
        for name, samples in times.items():
            per_span = statistics.median(samples)
            epoch_ms = per_span * SPANS_PER_EPOCH / 1000
            print(
                f"| {name} | {per_span:.2f} | {per_span / base:.1f}x | {epoch_ms:.3f} ms | "
                f"{epoch_ms / HOOK_BUDGET_MS * 100:.2f} % |"
            )
        for name, processor in processors.items():
            stats = processor.stats()
            print(
                f"\n{name}: exported {stats.exported}, dropped {stats.dropped} (queue full or export failed), "
                f"failed exports {stats.failed_exports}"
            )
        for provider, _ in providers.values():
            provider.shutdown()
        stop()


if __name__ == "__main__":
    main()
