"""Morphogenetic overhead on a training step, measured side by side in one run.

1. A training step with every seed dormant vs the unwrapped host (target <= 1.02x).
2. A step with one seed blending (GRAFTING) vs the same model after it fossilized.
3. The epoch-end hook of a real embedded run, against the 18 ms budget (target <= 5 ms).

Each pair is timed in alternating rounds so machine noise hits both sides alike;
ratios are of the medians. Prints markdown; never part of the tests.

    .venv/bin/python bench/overhead.py [--rounds N] [--steps N] [--skip-run]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from esper.data import load_dataset
from esper.hosts import build_host, default_host_spec
from esper.karn.catalog import TemplateCatalog
from esper.kasmina import KasminaOperator, wrap
from esper.kasmina.config import KasminaConfig
from esper.kasmina.source import KernelDescription
from esper.leyline.v1 import control_pb2, kasmina_pb2, kernel_pb2
from esper.leyline.v1 import lifecycle_pb2 as lc
from esper.tezzeret.artifacts import load_kernel_module
from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.pipelines import compile_blueprint

Step = Callable[[], None]


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Step:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    after = getattr(model, "step", None)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if after is not None:
            after()

    return step


def paired_medians(a: Step, b: Step, *, rounds: int, steps: int) -> tuple[float, float]:
    """Median microseconds per step of `a` and `b`, timed in alternating rounds."""
    times_a, times_b = [], []
    for fn in (a, b):
        for _ in range(20):
            fn()
    for _ in range(rounds):
        for fn, sink in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            sink.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(times_a), statistics.median(times_b)


class CompiledSource:
    """Kernels compiled by Tezzeret's STANDARD pipeline and loaded as Kasmina loads them."""

    def __init__(self, template_id: str, shape: tuple[int, ...], work: Path) -> None:
        template = TemplateCatalog.default().instantiate(template_id, shape)
        config = TezzeretConfig(worker_id="bench", wal_dir=work / "wal", work_dir=work / "work")
        compiled = compile_blueprint(template.ir, kernel_pb2.COMPILATION_PIPELINE_STANDARD, config)
        self.artifact = compiled.kernel
        self.ir = template.ir
        self.data = compiled.artifact

    def describe(self, kernel_id: str) -> KernelDescription:
        return KernelDescription(artifact=self.artifact, ir=self.ir)

    def instantiate(self, kernel_id: str) -> nn.Module:
        return load_kernel_module(self.data, kernel_pb2.COMPILATION_PIPELINE_STANDARD)


def _command(operator: KasminaOperator, seed_id: str, n: int, kind: int, **fields: object) -> None:
    command = control_pb2.AdaptationCommand(
        command_id=f"bench-{n}", run_id=operator.run_id, seed_id=seed_id, command_type=kind, **fields
    )
    operator.apply_command(kasmina_pb2.ApplyCommandRequest(command=command))


def dormant_vs_unwrapped(dataset: str, rounds: int, steps: int) -> tuple[str, float, float]:
    data = load_dataset(dataset, seed=0)
    spec = default_host_spec(data.input_kind, data.input_shape, data.num_classes, None)
    x, y = data.x_train[:64], data.y_train[:64]
    plain = build_host(spec)
    wrapped = wrap(build_host(spec), KasminaConfig(target_module_types=("ReLU",)), example_input=x[:2])
    unwrapped_us, dormant_us = paired_medians(
        training_step(plain, x, y), training_step(wrapped, x, y), rounds=rounds, steps=steps
    )
    return f"{dataset} ({spec.kind}, width {spec.width})", unwrapped_us, dormant_us


def blending_vs_fossilized(rounds: int, steps: int, work: Path) -> tuple[float, float]:
    data = load_dataset("digits", seed=0)
    spec = default_host_spec(data.input_kind, data.input_shape, data.num_classes, None)
    x, y = data.x_train[:64], data.y_train[:64]
    config = KasminaConfig(
        target_module_types=("ReLU",),
        ramp_steps=10**9,
        stabilization_steps=1,
        training_min_steps=1,
        fine_tuning_min_steps=1,
    )
    source = CompiledSource("conv3x3_relu", (spec.width, 8, 8), work)

    def grown(stage_path: list[tuple[int, dict[str, object]]]) -> nn.Module:
        model = wrap(build_host(spec), config, example_input=x[:2])
        operator = KasminaOperator(model, source, config, run_id="bench")
        _command(operator, "act1", 0, lc.COMMAND_TYPE_REQUEST_GERMINATION, kernel_id="k")
        for n, (kind, fields) in enumerate(stage_path, start=1):
            _command(operator, "act1", n, kind, **fields)
            model.step()
        return model

    advance = lc.COMMAND_TYPE_ADVANCE
    to_grafting = [
        (advance, {"target_stage": lc.SEED_STAGE_LOADING}),
        (advance, {"target_stage": lc.SEED_STAGE_GRAFTING}),
    ]
    blending = grown(to_grafting)
    fossil = grown(
        [
            *to_grafting,
            (advance, {"target_stage": lc.SEED_STAGE_STABILIZATION}),
            (advance, {"target_stage": lc.SEED_STAGE_EVALUATING}),
            (lc.COMMAND_TYPE_FOSSILIZE, {}),
        ]
    )
    return paired_medians(training_step(blending, x, y), training_step(fossil, x, y), rounds=rounds, steps=steps)


def hook_times(work: Path) -> dict[str, float]:
    from esper.config import load_config
    from esper.tolaria.session import run_training

    config = load_config(None, {"run.out": str(work / "run"), "run.epochs": 30})
    summary = run_training(config).summary
    return {key: float(summary[key]) for key in ("hook_ms_p50", "hook_ms_p95", "hook_budget_ms")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--skip-run", action="store_true", help="skip the embedded run (hook timing)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} rounds x {args.steps} steps, batch 64\n")
    print("| comparison | baseline (us/step) | with Esper (us/step) | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for dataset in ("digits", "spirals", "mnist5k"):
        label, base, dormant = dormant_vs_unwrapped(dataset, args.rounds, args.steps)
        print(
            f"| all seeds dormant vs unwrapped, {label} | {base:.1f} | {dormant:.1f} | "
            f"{dormant / base:.3f}x | <= 1.02x |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        blending, fossil = blending_vs_fossilized(args.rounds, args.steps, Path(tmp))
        print(
            f"| one seed blending (GRAFTING) vs the same seed fossilized, digits | {fossil:.1f} | "
            f"{blending:.1f} | {blending / fossil:.3f}x | - |"
        )
        if not args.skip_run:
            hook = hook_times(Path(tmp))
            print()
            print("| epoch-end hook, embedded digits run | p50 | p95 | budget | target |")
            print("|---|---:|---:|---:|---|")
            print(
                f"| state packet -> Tamiyo -> Kasmina | {hook['hook_ms_p50']:.2f} ms | "
                f"{hook['hook_ms_p95']:.2f} ms | {hook['hook_budget_ms']:.0f} ms | <= 5 ms |"
            )


if __name__ == "__main__":
    main()
