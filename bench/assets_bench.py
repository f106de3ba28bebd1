"""The asset pipeline's figures beside the budgets (DESIGN.md, issue targets).

- kernel fetch (download + SHA-256 check) p50/p95, embedded (in-process Urza) and over
  gRPC (a real server on loopback), for artifacts of several sizes up to ~1 MB;
- Kasmina's kernel cache: cold load (fetch + torch.export.load) vs hot graft (cache hit ->
  a private module ready to run), and the hit rate after warm-up;
- compile time per pipeline.
Prints markdown; never part of the tests.

    .venv/bin/python bench/assets_bench.py [--iterations N] [--aggressive]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from esper.clients import UrzaClient
from esper.clients.base import ClientConfig
from esper.karn.catalog import TemplateCatalog
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.leyline.v1.services import URZA_SERVICE
from esper.mesh.config import ServerConfig
from esper.mesh.hosting import host
from esper.mesh.threaded import ServerThread
from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.pipelines import compile_blueprint
from esper.tezzeret.worker import TezzeretWorker
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.validator import UrabraskValidator
from esper.urza.config import UrzaConfig
from esper.urza.fetch import download_kernel_bytes
from esper.urza.hub import UrzaHub

# (template, activation shape): artifacts from a few KB up to about 1 MB.
KERNELS = [
    ("conv3x3_relu", (8, 14, 14)),
    ("mlp_relu_e1", (64,)),
    ("mlp_relu_e2", (128,)),
    ("mlp_relu_e2", (256,)),
]


def timed_ms(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]


def build_kernels(hub: UrzaHub, work: Path) -> list[kernel_pb2.KernelArtifact]:
    catalog = TemplateCatalog.default()
    for template_id, shape in KERNELS:
        template = catalog.instantiate(template_id, shape)
        hub.create_blueprint(
            urza_pb2.CreateBlueprintRequest(
                ir=template.ir, template_id=template_id, pipelines=[kernel_pb2.COMPILATION_PIPELINE_STANDARD]
            )
        )
    worker = TezzeretWorker(hub, TezzeretConfig(worker_id="bench", wal_dir=work / "wal", work_dir=work / "work"))
    while worker.run_once():
        pass
    worker.close()
    validator = UrabraskValidator(hub, UrabraskConfig(worker_id="bench"))
    while validator.run_once() is not None:
        pass
    query = kernel_pb2.KernelQuery(status=kernel_pb2.KERNEL_STATUS_VALIDATED)
    kernels = hub.query_kernels(urza_pb2.QueryKernelsRequest(query=query, page_size=100)).result.kernels
    return sorted(kernels, key=lambda k: k.size_bytes)


def fetch_table(hub: UrzaHub, kernels: list[kernel_pb2.KernelArtifact], iterations: int) -> list[str]:
    server = ServerThread([host(URZA_SERVICE.bind(hub))], ServerConfig(service_name="urza-bench"))
    client = UrzaClient(ClientConfig(address=server.address))
    rows = []
    try:
        for kernel in kernels:
            embedded = timed_ms(lambda k=kernel: download_kernel_bytes(hub, k.kernel_id), iterations)
            remote = timed_ms(lambda k=kernel: download_kernel_bytes(client, k.kernel_id), iterations)
            rows.append(
                f"| {kernel.template_id} {list(kernel.input_shape.dims)} | {kernel.size_bytes / 1024:,.0f} KiB | "
                f"{embedded[0]:.2f} / {embedded[1]:.2f} | {remote[0]:.2f} / {remote[1]:.2f} |"
            )
    finally:
        client.close()
        server.stop()
    return rows


def cache_figures(hub: UrzaHub, kernels: list[kernel_pb2.KernelArtifact], iterations: int) -> dict[str, float]:
    ids = [k.kernel_id for k in kernels]
    cold = []
    for kernel_id in ids:
        cache = KernelCache(hub, KernelCacheConfig())
        start = time.perf_counter()
        cache.instantiate(kernel_id)
        cold.append((time.perf_counter() - start) * 1e3)
    cache = KernelCache(hub, KernelCacheConfig())
    for kernel_id in ids:
        cache.load(kernel_id)
    hot = timed_ms(lambda: cache.instantiate(ids[0], check_inputs=False), iterations)
    # Warm-up, then a random workload over the kernels in use: what fraction hits.
    workload = KernelCache(hub, KernelCacheConfig())
    rng = random.Random(0)
    for kernel_id in ids:
        workload.load(kernel_id)
    before = workload.stats()
    for _ in range(1000):
        workload.load(rng.choice(ids))
    after = workload.stats()
    hits = after.hits - before.hits
    misses = after.misses - before.misses
    return {
        "cold_ms_p50": statistics.median(cold),
        "hot_ms_p50": hot[0],
        "hot_ms_p95": hot[1],
        "hit_rate": hits / max(1, hits + misses),
    }


def compile_times(aggressive: bool, work: Path) -> list[str]:
    template = TemplateCatalog.default().instantiate("conv3x3_relu", (8, 14, 14))
    config = TezzeretConfig(worker_id="bench-compile", wal_dir=work / "cwal", work_dir=work / "cwork")
    pipelines = [kernel_pb2.COMPILATION_PIPELINE_FAST, kernel_pb2.COMPILATION_PIPELINE_STANDARD]
    if aggressive:
        pipelines.append(kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE)
    rows = []
    for pipeline in pipelines:
        start = time.perf_counter()
        compiled = compile_blueprint(template.ir, pipeline, config)
        seconds = time.perf_counter() - start
        name = kernel_pb2.CompilationPipeline.Name(pipeline).removeprefix("COMPILATION_PIPELINE_")
        rows.append(f"| {name} | {seconds:.2f} s | {len(compiled.artifact) / 1024:,.0f} KiB |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--aggressive", action="store_true", help="also time the AGGRESSIVE pipeline (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hub = UrzaHub.open(UrzaConfig(data_dir=str(work / "urza")))
        kernels = build_kernels(hub, work)
        print(f"{len(kernels)} validated STANDARD kernels; {args.iterations} iterations per figure\n")
        print("| kernel | artifact | fetch embedded p50 / p95 (ms) | fetch over gRPC p50 / p95 (ms) |")
        print("|---|---:|---:|---:|")
        print("\n".join(fetch_table(hub, kernels, args.iterations)))
        print("\nBudgets: Urza fetch p50 < 10 ms; over gRPC p50 <= 2 ms up to 1 MB (target).\n")
        figures = cache_figures(hub, kernels, args.iterations * 10)
        print("| kernel cache | figure | budget / target |")
        print("|---|---:|---|")
        print(f"| cold load (fetch + checksum + torch.export.load), p50 | {figures['cold_ms_p50']:.1f} ms | - |")
        print(
            f"| hot graft (cache hit -> private module), p50 | {figures['hot_ms_p50'] * 1e3:.0f} us | "
            "< 0.5 ms budget, <= 0.2 ms target |"
        )
        print(f"| hot graft, p95 | {figures['hot_ms_p95'] * 1e3:.0f} us | - |")
        print(
            f"| hit rate after warm-up (1,000 loads over the kernels in use) | {100 * figures['hit_rate']:.1f} % | "
            ">= 95 % |"
        )
        print("\n| pipeline | compile time (conv3x3_relu at [8, 14, 14]) | artifact |")
        print("|---|---:|---:|")
        print("\n".join(compile_times(args.aggressive, work)))
        hub.close()


if __name__ == "__main__":
    main()
