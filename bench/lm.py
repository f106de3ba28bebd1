"""Does growth pay on a language model? Esper's transformer on the text corpus, in bits per character.

Per seed, on the same corpus, splits, epochs, batch size and optimizer (`esper run
--dataset text --host transformer`'s defaults), every method keeping the state with the
best validation bits per character:

- static: the small initial host, no seeds (`esper run --static`);
- esper: the same host growing under the heuristic Tamiyo (`esper run`);
- static-final: the architecture Esper saved (host and fossilized seeds, rebuilt from
  lineage.json) with fresh initial weights, trained like a static host from epoch 0.

Prints validation and test bits per character (mean and standard deviation over the
seeds), parameters and wall time (training only: kernel compilation before the first
epoch is the asset pipeline's, cached across runs), and whether Esper beat its static
twin by more than the noise (the larger of the two methods' standard deviations over
seeds). Every finished cell goes to the results JSON at once; run it again with the same
--results to skip what is there. Never part of the tests.

    nice -n 10 .venv/bin/python bench/lm.py --seeds 0-2 --results runs/lm/results.json
    .venv/bin/python bench/lm.py --render --results runs/lm/results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from esper.config import load_config  # noqa: E402
from esper.data import load_dataset  # noqa: E402
from esper.hosts import HostSpec, build_host  # noqa: E402
from esper.tolaria.config import EsperConfig  # noqa: E402
from esper.tolaria.loop import count_parameters  # noqa: E402
from esper.tolaria.session import dataset_objective, run_training  # noqa: E402
from esper.tolaria.trainer import TolariaTrainer  # noqa: E402

STATIC, ESPER, FINAL = "static", "esper", "static-final"
METHODS = (STATIC, ESPER, FINAL)


def _config(args: argparse.Namespace, seed: int, **extra: Any) -> EsperConfig:
    overrides: dict[str, Any] = {
        "run.dataset": args.dataset,
        "run.host": "transformer",
        "run.seed": seed,
        "run.epochs": args.epochs,
        "run.host_width": args.width,
        "run.host_depth": args.depth,
        "run.device": "cpu",
        # The deterministic mode: every run of a comparison sees the same kernels, however
        # fast this machine compiles (by default a run starts at once and grows with what is ready).
        "assets.wait_for_kernels": True,
        **extra,
    }
    if args.assets_dir:
        overrides["assets.data_dir"] = args.assets_dir
    return load_config(args.config, overrides)


def _cell(summary: dict[str, Any], wall: float) -> dict[str, Any]:
    saved = summary.get("saved") or {}
    return {
        "val_bpc": saved.get("val_metric", summary["best_val_metric"]),
        "test_bpc": summary["final_test_metric"],
        "params": summary["params_final"],
        "wall_seconds": wall,
    }


def run_static(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    out = Path(args.out) / f"static-{seed}"
    summary = run_training(_config(args, seed, **{"run.static": True, "run.out": str(out)})).summary
    return {**_cell(summary, summary["wall_seconds"]), "detail": {"run_dir": str(out)}}


def run_esper(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    out = Path(args.out) / f"esper-{seed}"
    summary = run_training(_config(args, seed, **{"run.out": str(out)})).summary
    return {
        **_cell(summary, summary["wall_seconds"] - summary["asset_wait_seconds"]),
        "detail": {
            "run_dir": str(out),
            "params_initial": summary["params_initial"],
            "seeds_germinated": summary["seeds_germinated"],
            "seeds_fossilized": summary["seeds_fossilized"],
            "seeds_culled": summary["seeds_culled"],
            "rollbacks": summary["rollbacks"],
        },
    }


class _Plain(nn.Module):
    """The grown model as one plain module: every parameter trains as the host's would."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


def run_static_final(args: argparse.Namespace, seed: int, esper: dict[str, Any]) -> dict[str, Any]:
    """Esper's saved architecture, every weight back to its initial value, trained like a static host."""
    from esper.ir import build_module
    from esper.kasmina import lifecycle as lc
    from esper.kasmina import load_model

    run_dir = Path(esper["detail"]["run_dir"])
    model = load_model(run_dir)
    spec = json.loads((run_dir / "lineage.json").read_text())["host"]["spec"]
    model.host.load_state_dict(build_host(HostSpec.from_dict(spec)).state_dict())
    for seed_module in model.seed_list():
        if seed_module.stage == lc.FOSSILIZED and seed_module.kernel_parameters():
            assert seed_module.adaptation is not None and seed_module.adaptation.ir is not None
            seed_module.kernel.load_state_dict(build_module(seed_module.adaptation.ir).state_dict())  # type: ignore[union-attr]
    plain = _Plain(model)
    for param in plain.parameters():
        param.requires_grad_(True)
    config = _config(args, seed)
    data = load_dataset(config.run.dataset, seed=seed)
    started = time.perf_counter()
    trainer = TolariaTrainer(plain, None, config.run, config.tolaria, data=data, objective=dataset_objective(data))
    _, history = trainer.train()
    wall = time.perf_counter() - started
    test = trainer.test_stats()
    assert history.saved is not None and test is not None
    return {
        "val_bpc": history.saved.val_metric,
        "test_bpc": test.metric,
        "params": count_parameters(plain),
        "wall_seconds": wall,
        "detail": {"from": str(run_dir)},
    }


def _load(path: Path) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else {}


def _store(path: Path, results: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(results, indent=2, sort_keys=True))
    temporary.replace(path)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def render(results: dict[str, dict[str, Any]]) -> str:
    """The table: one row per method, means and standard deviations over the seeds that have every method."""
    seeds = sorted({key.split("/")[1] for key in results if _complete(results, key.split("/")[1])}, key=int)
    lines = [
        f"seeds: {', '.join(seeds) or 'none complete'}",
        "| method | val bits/char | test bits/char | parameters | wall s (training) |",
        "|---|---|---|---|---|",
    ]
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for method in METHODS:
        cells = [results[f"{method}/{seed}"] for seed in seeds]
        if not cells:
            continue
        rows[method] = {
            key: _mean_std([float(c[key]) for c in cells]) for key in ("val_bpc", "test_bpc", "params", "wall_seconds")
        }
        row = rows[method]
        lines.append(
            f"| {method} | {row['val_bpc'][0]:.4f} ± {row['val_bpc'][1]:.4f} | {row['test_bpc'][0]:.4f} ± "
            f"{row['test_bpc'][1]:.4f} | {row['params'][0]:,.0f} | {row['wall_seconds'][0]:.0f} |"
        )
    if STATIC in rows and ESPER in rows:
        gain = rows[STATIC]["test_bpc"][0] - rows[ESPER]["test_bpc"][0]
        noise = max(rows[STATIC]["test_bpc"][1], rows[ESPER]["test_bpc"][1])
        per_seed = [results[f"{STATIC}/{s}"]["test_bpc"] - results[f"{ESPER}/{s}"]["test_bpc"] for s in seeds]
        verdict = "beats" if gain > noise and all(d > 0 for d in per_seed) else "does not beat"
        lines.append(
            f"esper {verdict} its static twin: {gain:+.4f} bits/char on test (noise {noise:.4f}; per seed "
            f"{', '.join(f'{d:+.4f}' for d in per_seed)})"
        )
    return "\n".join(lines)


def _complete(results: dict[str, dict[str, Any]], seed: str) -> bool:
    return all(f"{method}/{seed}" in results for method in METHODS)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-", 1)
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's run.epochs")
    parser.add_argument("--width", type=int, default=None, help="default: the transformer host's")
    parser.add_argument("--depth", type=int, default=None, help="default: the transformer host's")
    parser.add_argument("--dataset", default="text")
    parser.add_argument("--config", default=None, help="YAML config for every run (esper run --config)")
    parser.add_argument("--assets-dir", default=None, help="kernel cache (default: the config's)")
    parser.add_argument("--out", default="runs/lm")
    parser.add_argument("--results", default="runs/lm/results.json")
    parser.add_argument("--render", action="store_true", help="print the table of --results and exit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = Path(args.results)
    results = _load(path)
    if not args.render:
        for seed in _seeds(args.seeds):
            for method in METHODS:
                key = f"{method}/{seed}"
                if key in results:
                    continue
                if method == STATIC:
                    cell = run_static(args, seed)
                elif method == ESPER:
                    cell = run_esper(args, seed)
                else:
                    cell = run_static_final(args, seed, results[f"{ESPER}/{seed}"])
                results[key] = cell
                _store(path, results)
                print(f"{key}: {json.dumps({k: v for k, v in cell.items() if k != 'detail'})}", flush=True)
    print(render(results))


if __name__ == "__main__":
    main()
