"""Does growth pay? Static initial host vs Esper vs the grown architecture trained from scratch.

For each dataset and seed, three runs with the default `esper run` settings:
- static: the initial host, no seeds (`esper run --static`);
- esper: the same host growing under the heuristic Tamiyo;
- grown-from-scratch: the architecture Esper ended with (host + fossilized blocks,
  rebuilt from their IRs with fresh weights), trained from the start for the same epochs.
Prints a markdown table of test accuracy mean ± std (sample std over seeds),
parameters and wall time, and whether Esper's margin over the static host exceeds
both standard deviations. Never part of the tests.

    .venv/bin/python bench/efficacy.py [--datasets digits,mnist5k,spirals] [--seeds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esper.config import EsperConfig, load_config
from esper.data import load_dataset
from esper.hosts import build_host
from esper.hosts.spec import HostSpec
from esper.ir import build_module
from esper.leyline.v1 import blueprint_pb2
from esper.tolaria.loop import count_parameters
from esper.tolaria.session import run_training
from esper.tolaria.trainer import TolariaTrainer

METHODS = ("static", "esper", "grown-from-scratch")


class GrownArchitecture(nn.Module):
    """A host with residual blocks after some of its modules: output = activation + block(activation)."""

    def __init__(self, host: nn.Module, blocks: dict[str, nn.Module]) -> None:
        super().__init__()
        self.host = host
        self.blocks = nn.ModuleDict({path.replace(".", "__"): block for path, block in blocks.items()})
        for path in blocks:
            block = self.blocks[path.replace(".", "__")]
            host.get_submodule(path).register_forward_hook(lambda _m, _i, out, b=block: out + b(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.host(x)  # type: ignore[no-any-return]


def grown_from_scratch(run_dir: Path, config: EsperConfig) -> tuple[float, int, float]:
    """Rebuild the grown architecture with fresh weights and train it like a static host."""
    from google.protobuf import json_format

    lineage = json.loads((run_dir / "lineage.json").read_text())
    spec = HostSpec.from_dict(lineage["host"]["spec"])
    blocks: dict[str, nn.Module] = {}
    for seed in lineage["seeds"]:
        if seed["stage"] != "FOSSILIZED":
            continue
        ir = json_format.ParseDict(seed["adaptation"]["ir"], blueprint_pb2.BlueprintIR())
        blocks[seed["descriptor"]["seedId"]] = build_module(ir)
    model = GrownArchitecture(build_host(spec), blocks)
    data = load_dataset(config.run.dataset, seed=config.run.seed)
    started = time.perf_counter()
    trainer = TolariaTrainer(model, None, config.run, config.tolaria, data=data)
    trainer.train()
    return trainer.test_accuracy().accuracy, count_parameters(model), time.perf_counter() - started


def run_seed(dataset: str, seed: int, out: Path, assets_dir: str | None) -> dict[str, tuple[float, int, float]]:
    overrides: dict[str, Any] = {"run.dataset": dataset, "run.seed": seed}
    if assets_dir:
        overrides["assets.data_dir"] = assets_dir
    results: dict[str, tuple[float, int, float]] = {}
    for method, static in (("static", True), ("esper", False)):
        folder = str(out / f"{dataset}-{method}-{seed}")
        config = load_config(None, {**overrides, "run.static": static, "run.out": folder})
        summary = run_training(config).summary
        results[method] = (summary["final_test_accuracy"], summary["params_final"], summary["wall_seconds"])
    esper_config = load_config(None, {**overrides, "run.out": str(out / f"{dataset}-esper-{seed}")})
    results["grown-from-scratch"] = grown_from_scratch(out / f"{dataset}-esper-{seed}", esper_config)
    return results


def _std(values: list[float]) -> float:
    """Sample standard deviation (n - 1): the conservative figure over a handful of seeds."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def report(dataset: str, per_seed: list[dict[str, tuple[float, int, float]]]) -> list[str]:
    lines = []
    for method in METHODS:
        accuracy = [row[method][0] for row in per_seed]
        params = [row[method][1] for row in per_seed]
        wall = [row[method][2] for row in per_seed]
        lines.append(
            f"| {dataset} | {method} | {100 * statistics.mean(accuracy):.2f} ± {100 * _std(accuracy):.2f} | "
            f"{statistics.mean(params):,.0f} | {statistics.mean(wall):.1f} |"
        )
    return lines


def verdict(dataset: str, per_seed: list[dict[str, tuple[float, int, float]]]) -> str:
    static = [row["static"][0] for row in per_seed]
    esper = [row["esper"][0] for row in per_seed]
    margin = statistics.mean(esper) - statistics.mean(static)
    bound = max(_std(static), _std(esper))
    wins = sum(e > s for e, s in zip(esper, static, strict=True))
    return (
        f"- {dataset}: Esper - static = {100 * margin:+.2f} points; stds {100 * _std(static):.2f} (static), "
        f"{100 * _std(esper):.2f} (Esper) -> margin larger than both: {'yes' if margin > bound else 'NO'}; "
        f"Esper ahead on {wins} of {len(esper)} seeds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,mnist5k,spirals")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--assets-dir", help="embedded Urza folder (default: the shared cache)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    defaults = EsperConfig()
    print(
        f"{args.seeds} seeds per cell; esper run defaults: {defaults.run.epochs} epochs, lr "
        f"{defaults.run.learning_rate}, batch {defaults.run.batch_size}; torch {torch.__version__}, 1 thread\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        table = [
            "| dataset | method | test accuracy % (mean ± std) | parameters | wall s |",
            "|---|---|---:|---:|---:|",
        ]
        verdicts = []
        for dataset in args.datasets.split(","):
            per_seed = [run_seed(dataset, seed, out, args.assets_dir) for seed in range(args.seeds)]
            table += report(dataset, per_seed)
            verdicts.append(verdict(dataset, per_seed))
            print(f"({dataset} done)", flush=True)
        print("\n".join(table))
        print()
        print("\n".join(verdicts))


if __name__ == "__main__":
    main()
