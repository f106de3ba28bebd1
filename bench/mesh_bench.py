"""Mesh benchmarks: what Esper's transports cost, each beside a baseline measured in the same run.

Sections (pick with --sections, default all):

- oona: Oona publish latency (p50/p95, one message at a time, waiting for the
  JetStream ack) and throughput (batched: publish N, then flush), each beside a raw
  nats-py JetStream loop on the same server, stream and payload. Targets: p95
  within 1.5x of raw; batched throughput >= 20,000 msg/s; budget p95 < 25 ms (docs/benchmarks.md).
- epoch_hook, kernel_fetch: extension points for the gRPC measurements (Tolaria's
  epoch-end hook through Tamiyo, Urza kernel fetch); see `SECTIONS`.

Starts its own nats-server (JetStream, file store) on a free loopback port in a
temporary folder and stops it by pid. Prints a markdown table; never part of the tests.

    .venv/bin/python bench/mesh_bench.py [--messages N] [--samples N] [--rounds N] [--sections oona]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import __version__ as nats_py_version

from esper.leyline.v1 import bus_pb2
from esper.leyline.v1.services import TAMIYO_SERVICE, URZA_SERVICE
from esper.mesh.hosting import host
from esper.oona.config import OonaConfig
from esper.oona.envelope import seal
from esper.oona.jetstream import JetStreamBus
from esper.state.samples import sample_state_packet

MSG_ID = "Nats-Msg-Id"
# Raw and Oona publish to their own subjects of the same stream (ESPER_TELEMETRY).
RAW_SINGLE, RAW_BATCH = "esper.telemetry.raw.single", "esper.telemetry.raw.batch"
OONA_SINGLE, OONA_BATCH = "esper.telemetry.oona.single", "esper.telemetry.oona.batch"


@dataclass(frozen=True)
class Row:
    """One line of the table: a measure, Esper's figure, the baseline's, and the target."""

    measure: str
    esper: float
    baseline: float | None
    unit: str
    target: str

    def ratio(self) -> str:
        if self.baseline is None or self.baseline == 0:
            return "-"
        return f"{self.esper / self.baseline:.2f}x"


@dataclass(frozen=True)
class BenchContext:
    """What every section gets: its arguments and the services started for the run."""

    args: argparse.Namespace
    nats_url: str


Section = Callable[[BenchContext], list[Row]]


# -- Oona ------------------------------------------------------------------------------------


def envelopes(count: int, prefix: str) -> list[bus_pb2.BusEnvelope]:
    """Realistic telemetry envelopes (a 16-seed SystemStatePacket each), unique keys."""
    packet = sample_state_packet()
    return [seal(packet, source="tolaria", idempotency_key=f"{prefix}-{index}") for index in range(count)]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def raw_latencies(url: str, subject: str, batch: list[bus_pb2.BusEnvelope]) -> list[float]:
    """nats-py `await js.publish(...)` one at a time; seconds per publish+ack."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        samples = []
        for envelope in batch:
            data, headers = envelope.SerializeToString(), {MSG_ID: envelope.idempotency_key}
            start = time.perf_counter()
            await js.publish(subject, data, headers=headers)
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        await nc.close()


async def raw_throughput(url: str, subject: str, batch: list[bus_pb2.BusEnvelope]) -> float:
    """nats-py `js.publish_async` for the whole batch, then wait for every ack; messages per second."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(publish_async_max_pending=len(batch) + 1)
        start = time.perf_counter()
        for envelope in batch:
            await js.publish_async(subject, envelope.SerializeToString(), headers={MSG_ID: envelope.idempotency_key})
        await js.publish_async_completed()
        return len(batch) / (time.perf_counter() - start)
    finally:
        await nc.close()


def oona_latencies(
    bus: JetStreamBus, subject: str, batch: list[bus_pb2.BusEnvelope]
) -> tuple[list[float], list[float]]:
    """`bus.publish` + `bus.flush` one at a time (publish+ack), and `bus.publish` alone (enqueue)."""
    acked, enqueue = [], []
    for envelope in batch:
        start = time.perf_counter()
        bus.publish(subject, envelope)
        queued = time.perf_counter()
        if not bus.flush(10.0):
            raise RuntimeError("Oona did not flush within 10 s")
        acked.append(time.perf_counter() - start)
        enqueue.append(queued - start)
    return acked, enqueue


def oona_throughput(bus: JetStreamBus, subject: str, batch: list[bus_pb2.BusEnvelope]) -> float:
    start = time.perf_counter()
    for envelope in batch:
        bus.publish(subject, envelope)
    if not bus.flush(60.0):
        raise RuntimeError("Oona did not flush within 60 s")
    return len(batch) / (time.perf_counter() - start)


def oona_section(context: BenchContext) -> list[Row]:
    args = context.args
    config = OonaConfig(url=context.nats_url, buffer_max_messages=max(args.messages, 50_000))
    raw_lat: list[float] = []
    oona_lat: list[float] = []
    oona_enqueue: list[float] = []
    raw_rate: list[float] = []
    oona_rate: list[float] = []
    with JetStreamBus(config) as bus:
        # Warm both paths (connections, stream files, JIT-free but cache-warm Python) before measuring.
        asyncio.run(raw_latencies(context.nats_url, "esper.telemetry.raw.warm", envelopes(200, "rw")))
        oona_latencies(bus, "esper.telemetry.oona.warm", envelopes(200, "ow"))
        url, samples, messages = context.nats_url, args.samples, args.messages
        for index in range(args.rounds):
            raw_lat += asyncio.run(raw_latencies(url, RAW_SINGLE, envelopes(samples, f"rs{index}")))
            acked, enqueue = oona_latencies(bus, OONA_SINGLE, envelopes(samples, f"os{index}"))
            oona_lat += acked
            oona_enqueue += enqueue
            raw_rate.append(asyncio.run(raw_throughput(url, RAW_BATCH, envelopes(messages, f"rb{index}"))))
            oona_rate.append(oona_throughput(bus, OONA_BATCH, envelopes(messages, f"ob{index}")))
        stats = bus.stats()
    if stats.dropped or stats.pending_publish:
        raise RuntimeError(f"Oona lost messages during the bench: {stats}")

    def ms(samples: list[float], fraction: float) -> float:
        return percentile(samples, fraction) * 1e3

    rate, raw = statistics.median(oona_rate), statistics.median(raw_rate)
    return [
        Row("Oona publish+ack p50 (ms)", ms(oona_lat, 0.5), ms(raw_lat, 0.5), "ms", "-"),
        Row("Oona publish+ack p95 (ms)", ms(oona_lat, 0.95), ms(raw_lat, 0.95), "ms", "<= 1.5x raw, < 25 ms"),
        Row("Oona publish() call alone p95 (ms)", ms(oona_enqueue, 0.95), None, "ms", "(cost to a training step)"),
        Row("Oona batched throughput (msg/s)", rate, raw, "msg/s", ">= 20,000 msg/s"),
    ]


# -- gRPC sections ------------------------------------------------------------------------------


def _percentile_ms(samples: list[float], fraction: float) -> float:
    return percentile(samples, fraction) * 1e3


def _hook_samples(controller: object, boundaries: int) -> list[float]:
    """Seconds per epoch-end hook (state packet -> Tamiyo -> Kasmina) on a wrapped digits model."""
    from esper.data import load_dataset
    from esper.hosts import build_host, default_host_spec
    from esper.kasmina import KasminaOperator, wrap
    from esper.kasmina.config import KasminaConfig
    from esper.tolaria.hook import BoundaryState, run_hook

    class NoKernels:
        def describe(self, kernel_id: str) -> object:
            raise LookupError(kernel_id)

        def instantiate(self, kernel_id: str) -> object:
            raise LookupError(kernel_id)

    data = load_dataset("digits", seed=0)
    spec = default_host_spec(data.input_kind, data.input_shape, data.num_classes, None)
    model = wrap(build_host(spec), KasminaConfig(target_module_types=("ReLU",)), example_input=data.x_train[:2])
    operator = KasminaOperator(model, NoKernels(), run_id="bench-hook")  # type: ignore[arg-type]
    samples = []
    for epoch in range(boundaries):
        telemetry = operator.on_epoch_end(epoch, validation_accuracy=0.5)
        state = BoundaryState(
            run_id="bench-hook",
            epoch=epoch,
            global_step=10 * epoch,
            training_loss=0.5,
            validation_loss=0.5,
            validation_accuracy=0.5,
            epoch_ms=100,
            parameter_count=1000,
            final_epoch=10**6,
            seed_layout=model.seed_layout(),
            telemetry=telemetry,
        )
        start = time.perf_counter()
        run_hook(state, controller, operator)  # type: ignore[arg-type]
        samples.append(time.perf_counter() - start)
    return samples[20:]


def epoch_hook_section(context: BenchContext) -> list[Row]:
    """Tolaria's epoch-end hook with Tamiyo in process vs over gRPC (budget 18 ms; target <= 10 ms over gRPC).

    Tamiyo queries a real (empty) Urza for kernels at every plateau, so each boundary carries
    a decision and, over gRPC, a full Step round trip on loopback.
    """
    from esper.clients import TamiyoClient
    from esper.clients.base import ClientConfig
    from esper.mesh.config import ServerConfig
    from esper.mesh.threaded import ServerThread
    from esper.tamiyo import TamiyoController
    from esper.tamiyo.config import TamiyoConfig
    from esper.urza.config import UrzaConfig
    from esper.urza.hub import UrzaHub

    boundaries = 20 + 100 * context.args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        hub = UrzaHub.open(UrzaConfig(data_dir=tmp))
        config = TamiyoConfig(warmup_epochs=0, patience=1, min_delta=1.0)
        embedded = _hook_samples(TamiyoController(None, config, kernels=hub), boundaries)
        server = ServerThread(
            [host(TAMIYO_SERVICE.bind(TamiyoController(None, config, kernels=hub)))],
            ServerConfig(service_name="tamiyo"),
        )
        client = TamiyoClient(ClientConfig(address=server.address, deadline_seconds=1.0))
        try:
            remote = _hook_samples(client, boundaries)
        finally:
            client.close()
            server.stop()
            hub.close()
    return [
        Row(
            "epoch-end hook p50, Tamiyo over gRPC vs in process (ms)",
            _percentile_ms(remote, 0.5),
            _percentile_ms(embedded, 0.5),
            "ms",
            "<= 10 ms over gRPC; budget 18 ms",
        ),
        Row(
            "epoch-end hook p95, Tamiyo over gRPC vs in process (ms)",
            _percentile_ms(remote, 0.95),
            _percentile_ms(embedded, 0.95),
            "ms",
            "budget 18 ms",
        ),
    ]


def kernel_fetch_section(context: BenchContext) -> list[Row]:
    """Urza kernel download (with SHA-256 check) over gRPC vs in process (target p50 <= 2 ms up to 1 MB)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from assets_bench import build_kernels, timed_ms

    from esper.clients import UrzaClient
    from esper.clients.base import ClientConfig
    from esper.mesh.config import ServerConfig
    from esper.mesh.threaded import ServerThread
    from esper.urza.config import UrzaConfig
    from esper.urza.fetch import download_kernel_bytes
    from esper.urza.hub import UrzaHub

    iterations = 50 * context.args.rounds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hub = UrzaHub.open(UrzaConfig(data_dir=str(Path(tmp) / "urza")))
        kernels = build_kernels(hub, Path(tmp))
        server = ServerThread([host(URZA_SERVICE.bind(hub))], ServerConfig(service_name="urza"))
        client = UrzaClient(ClientConfig(address=server.address))
        try:
            for kernel in (kernels[0], kernels[-1]):
                remote = timed_ms(lambda k=kernel: download_kernel_bytes(client, k.kernel_id), iterations)
                local = timed_ms(lambda k=kernel: download_kernel_bytes(hub, k.kernel_id), iterations)
                label = f"kernel fetch p50, {kernel.size_bytes / 1024:,.0f} KiB, gRPC vs in process (ms)"
                rows.append(Row(label, remote[0], local[0], "ms", "<= 2 ms over gRPC up to 1 MB; budget 10 ms"))
        finally:
            client.close()
            server.stop()
            hub.close()
    return rows


SECTIONS: dict[str, Section] = {
    "oona": oona_section,
    "epoch_hook": epoch_hook_section,
    "kernel_fetch": kernel_fetch_section,
}


# -- driver ------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    print("| measure | Esper | baseline (same run) | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        baseline = "-" if row.baseline is None else _figure(row.baseline, row.unit)
        esper = _figure(row.esper, row.unit)
        print(f"| {row.measure} | {esper} | {baseline} | {row.ratio()} | {row.target} |")


def _figure(value: float, unit: str) -> str:
    return f"{value:,.3f}" if unit == "ms" else f"{value:,.0f}"


async def server_version(url: str) -> str:
    nc = await nats.connect(url)
    try:
        return str(nc.connected_server_version)
    finally:
        await nc.close()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per batched-throughput round")
    parser.add_argument("--samples", type=int, default=1_000, help="single publishes per latency round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating raw and Oona")
    parser.add_argument(
        "--sections", default="oona,epoch_hook,kernel_fetch", help=f"comma-separated, from {sorted(SECTIONS)}"
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {sorted(SECTIONS)}")
    # The tests' nats-server launcher (free port, tmp store, stop by pid), importable from the repo root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.nats import NatsServer

    with tempfile.TemporaryDirectory(prefix="esper-mesh-bench-") as workdir:
        server = NatsServer(Path(workdir))
        server.start()
        try:
            context = BenchContext(args=args, nats_url=server.url)
            print(
                f"nats-server {asyncio.run(server_version(server.url))} (JetStream, file store), "
                f"nats-py {nats_py_version}, {os.cpu_count()} CPUs, payload "
                f"{envelopes(1, 'size')[0].ByteSize()} B envelope, {args.rounds} rounds"
            )
            print()
            rows: list[Row] = []
            for name in chosen:
                try:
                    rows += SECTIONS[name](context)
                except NotImplementedError as missing:
                    print(f"section {name} skipped: {missing}", file=sys.stderr)
            print_table(rows)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
