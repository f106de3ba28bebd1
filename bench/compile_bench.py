"""Tezzeret's pipelines: compile time, artifact size, load time and forward latency per pipeline.

For a few of Karn's catalog templates, each pipeline (FAST, STANDARD, AGGRESSIVE) compiles the
template's IR with the real `compile_blueprint`, then the artifact is loaded the way Kasmina
loads it (`load_kernel_module`) and timed forward at batch 64 under torch.no_grad(), next to
the eager module built from the same IR. Prints a markdown table; never part of the tests.

    .venv/bin/python bench/compile_bench.py [--templates a,b] [--iterations N] [--fresh-inductor-cache]

AGGRESSIVE compile time depends on Inductor's on-disk cache: the first compile on a machine
builds precompiled headers. --fresh-inductor-cache points Inductor at an empty folder to
measure that cold case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_TEMPLATES = "mlp_gelu_e2,gn_conv3x3_g4,prenorm_attn_h2,transformer_block_h2"


def forward_latency_ms(module: object, x: object, iterations: int, warmup: int = 20) -> tuple[float, float, float]:
    """Mean, p50 and p95 of one forward call, milliseconds."""
    import torch

    timings = []
    with torch.no_grad():
        for _ in range(warmup):
            module(x)  # type: ignore[operator]
        for _ in range(iterations):
            start = time.perf_counter()
            module(x)  # type: ignore[operator]
            timings.append((time.perf_counter() - start) * 1e3)
    timings.sort()
    return statistics.fmean(timings), timings[len(timings) // 2], timings[int(len(timings) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", default=DEFAULT_TEMPLATES, help=f"default: {DEFAULT_TEMPLATES}")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--fresh-inductor-cache", action="store_true")
    args = parser.parse_args()
    if args.fresh_inductor_cache:
        # Read by torch at import: set before the first torch import below.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cache-")

    import torch

    from esper.ir import build_module, example_input
    from esper.karn.catalog import TemplateCatalog
    from esper.tezzeret.artifacts import load_kernel_module
    from esper.tezzeret.config import ALL_PIPELINES, TezzeretConfig
    from esper.tezzeret.pipelines import compile_blueprint
    from esper.tezzeret.toolchain import cxx_compiler_version, pipeline_name

    catalog = TemplateCatalog.default()
    work = Path(tempfile.mkdtemp(prefix="compile-bench-"))
    config = TezzeretConfig(worker_id="bench", wal_dir=work / "wal", work_dir=work / "work")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {cxx_compiler_version()}, "
        f"target {config.hardware_target}; forward at batch {args.batch}, {args.iterations} iterations, "
        f"no_grad{'; fresh Inductor cache' if args.fresh_inductor_cache else ''}"
    )
    print()
    print(
        "| template | params | pipeline | compile (s) | artifact (KiB) | load (ms) "
        "| forward mean (ms) | p50 (ms) | p95 (ms) | vs eager p50 |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for template_id in args.templates.split(","):
        template = catalog.get_template(template_id)
        ir = template.ir
        x = example_input(ir, args.batch, seed=1)
        eager = build_module(ir)
        eager_mean, eager_p50, eager_p95 = forward_latency_ms(eager, x, args.iterations)
        params = template.parameter_estimate
        print(
            f"| {template_id} | {params} | eager | - | - | - | {eager_mean:.3f} | {eager_p50:.3f} "
            f"| {eager_p95:.3f} | 1.00 |"
        )
        for pipeline in ALL_PIPELINES:
            compiled = compile_blueprint(ir, pipeline, config, blueprint_id="bp-bench")
            start = time.perf_counter()
            module = load_kernel_module(compiled.artifact, pipeline)
            load_ms = (time.perf_counter() - start) * 1e3
            mean, p50, p95 = forward_latency_ms(module, x, args.iterations)
            print(
                f"| {template_id} | {compiled.kernel.parameter_count} | {pipeline_name(pipeline)} "
                f"| {compiled.compile_seconds:.2f} | {len(compiled.artifact) / 1024:.0f} | {load_ms:.1f} "
                f"| {mean:.3f} | {p50:.3f} | {p95:.3f} | {eager_p50 / p50:.2f} |"
            )


if __name__ == "__main__":
    main()
