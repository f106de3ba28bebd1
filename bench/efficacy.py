"""Does growth pay, fairly measured? Esper against static networks and against gromo's TINY growth.

Per task and seed, on the same data, splits, epochs, batch size and optimizer (Adam,
`esper run`'s defaults), every method keeping the state with the best validation
accuracy (Tolaria's keep_best_state; the same rule for gromo):

- static: the initial host, no seeds (`esper run --static`);
- esper: the same host growing under the heuristic Tamiyo (`esper run`);
- best-static: the best of a small grid of static hosts (each depth the input allows,
  at the width closest to Esper's final parameter count of that seed), selected on
  validation accuracy, reported on test;
- grown-from-scratch: the architecture Esper saved (host and fossilized seeds, rebuilt
  from lineage.json) with fresh initial weights, trained like a static host;
- gromo: gromo's TINY growth of an MLP (two hidden layers, on flattened pixels for
  images) from about the initial host's size to Esper's final parameter count.

Every finished cell goes to the results JSON at once, so a long bench killed half way
loses nothing: run it again with the same --results and it skips what is there.
Subsets run piecewise (--tasks, --seeds, --methods); --render prints the table of a
results file without running anything. best-static, grown-from-scratch and gromo
need the seed's Esper cell (they run after it). Never part of the tests; its logic is
tested in tests/bench/.

    nice -n 10 .venv/bin/python bench/efficacy.py --tasks digits,spirals --seeds 0-4 \
        --results runs/efficacy/results.json
    .venv/bin/python bench/efficacy.py --render --results runs/efficacy/results.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.efficacy_report import (  # noqa: E402
    BEST_STATIC,
    DEFAULT_TASKS,
    ESPER,
    GROMO,
    GROWN,
    METHODS,
    STATIC,
    TASKS,
    ResultStore,
    Task,
    gromo_start_width,
    load_cells,
    render_table,
    select_on_validation,
    static_grid,
    verdicts,
)
from esper.config import EsperConfig, load_config  # noqa: E402
from esper.data import load_dataset  # noqa: E402
from esper.data.bundle import Dataset  # noqa: E402
from esper.hosts import build_host, default_host_spec  # noqa: E402
from esper.hosts.spec import HostSpec  # noqa: E402
from esper.tolaria.loop import count_parameters  # noqa: E402
from esper.tolaria.session import run_training  # noqa: E402
from esper.tolaria.trainer import TolariaTrainer  # noqa: E402


def _config(task: Task, seed: int, args: argparse.Namespace, **extra: Any) -> EsperConfig:
    overrides: dict[str, Any] = {
        "run.dataset": task.dataset,
        "run.seed": seed,
        "run.host_width": task.host_width,
        "run.epochs": args.epochs,
        # The deterministic mode: every run of a comparison sees the same kernels, however
        # fast this machine compiles (by default a run starts at once and grows with what is ready).
        "assets.wait_for_kernels": True,
        **extra,
    }
    if args.assets_dir:
        overrides["assets.data_dir"] = args.assets_dir
    return load_config(None, overrides)


def _static_trainer(model: nn.Module, data: Dataset, config: EsperConfig) -> TolariaTrainer:
    try:  # an older Tolaria (measured for before/after figures) took one merged settings object
        from esper.tolaria.session import trainer_settings  # type: ignore[attr-defined]
    except ImportError:
        return TolariaTrainer(model, None, config.run, config.tolaria, data=data)
    return TolariaTrainer(model, None, trainer_settings(config), data=data)  # type: ignore[arg-type]


def _train_static(model: nn.Module, data: Dataset, config: EsperConfig) -> dict[str, Any]:
    """Train a fixed architecture as `esper run --static` does; the saved (best validated) state is tested."""
    started = time.perf_counter()
    trainer = _static_trainer(model, data, config)
    _, history = trainer.train()
    wall = time.perf_counter() - started
    # Older Tolarias (before keep_best_state) end with their final state: measure it as such.
    saved = getattr(history, "saved", None)
    val = saved.val_metric if saved is not None else history.epochs[-1].metrics.val_accuracy
    return {
        "test_accuracy": trainer.test_accuracy().metric,
        "val_accuracy": val,
        "params": count_parameters(trainer.model),
        "wall_seconds": wall,
        "saved_epoch": saved.epoch if saved is not None else len(history.epochs) - 1,
    }


def _static_host(spec: HostSpec, config: EsperConfig) -> nn.Module:
    from esper.kasmina import MorphableModel

    return MorphableModel(build_host(spec), [], config.kasmina)


def run_static(task: Task, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    config = _config(task, seed, args)
    data = load_dataset(config.run.dataset, seed=seed)
    spec = default_host_spec(data.input_kind, data.input_shape, data.num_classes, task.host_width, init_seed=seed)
    result = _train_static(_static_host(spec, config), data, config)
    return {**result, "detail": {"host": spec.to_dict()}}


def run_esper(task: Task, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out) / f"{task.name}-esper-{seed}"
    summary = run_training(_config(task, seed, args, **{"run.out": str(out)})).summary
    saved = summary.get("saved") or {}
    return {
        "test_accuracy": summary["final_test_accuracy"],
        "val_accuracy": saved.get("val_metric", summary["best_val_accuracy"]),
        "params": summary["params_final"],
        # Kernel compilation before the first epoch is the asset pipeline's, cached across runs.
        "wall_seconds": summary["wall_seconds"] - summary["asset_wait_seconds"],
        "detail": {
            "run_dir": str(out),
            "params_initial": summary["params_initial"],
            "epochs": summary["epochs"],
            "seeds_fossilized": summary["seeds_fossilized"],
            "seeds_culled": summary["seeds_culled"],
            "rollbacks": summary.get("rollback_events", summary["rollbacks"]),
            "saved": saved,
        },
    }


def run_best_static(task: Task, seed: int, args: argparse.Namespace, esper: dict[str, Any]) -> dict[str, Any]:
    config = _config(task, seed, args)
    data = load_dataset(config.run.dataset, seed=seed)
    spec = default_host_spec(data.input_kind, data.input_shape, data.num_classes, task.host_width, init_seed=seed)
    grid = static_grid(spec.kind, data.input_shape, data.num_classes, int(esper["params"]))
    results = []
    for member in grid:
        member_spec = HostSpec(spec.kind, spec.input_shape, spec.num_classes, member.width, member.depth, seed)
        result = _train_static(_static_host(member_spec, config), data, config)
        results.append({**member.to_dict(), **result})
    chosen = select_on_validation(results)
    return {
        "test_accuracy": chosen["test_accuracy"],
        "val_accuracy": chosen["val_accuracy"],
        "params": chosen["params"],
        "wall_seconds": chosen["wall_seconds"],
        "detail": {
            "target_params": int(esper["params"]),
            "chosen": {"depth": chosen["depth"], "width": chosen["width"]},
            "grid": results,
            "grid_wall_seconds": sum(r["wall_seconds"] for r in results),
        },
    }


class _Plain(nn.Module):
    """The grown model as one plain module: every parameter trains as the host's would."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


def run_grown_from_scratch(task: Task, seed: int, args: argparse.Namespace, esper: dict[str, Any]) -> dict[str, Any]:
    """Esper's saved architecture, every weight back to its initial value, trained like a static host."""
    from esper.ir import build_module
    from esper.kasmina import lifecycle as lc
    from esper.kasmina import load_model

    run_dir = Path(esper["detail"]["run_dir"])
    model = load_model(run_dir)
    # The host may have grown (width fossils are written into its layers): fresh default
    # initial weights at its saved shapes.
    torch.manual_seed(seed)
    for module in model.host.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    for seed_module in model.seed_list():
        if seed_module.stage == lc.FOSSILIZED and seed_module.kernel_parameters():
            assert seed_module.adaptation is not None and seed_module.adaptation.ir is not None
            seed_module.kernel.load_state_dict(build_module(seed_module.adaptation.ir).state_dict())  # type: ignore[union-attr]
    plain = _Plain(model)
    for param in plain.parameters():
        param.requires_grad_(True)
    config = _config(task, seed, args)
    data = load_dataset(config.run.dataset, seed=seed)
    result = _train_static(plain, data, config)
    assert count_parameters(plain) == result["params"]
    return {**result, "detail": {"from": str(run_dir)}}


def run_gromo(task: Task, seed: int, args: argparse.Namespace, esper: dict[str, Any]) -> dict[str, Any]:
    from bench.efficacy_gromo import train_gromo

    config = _config(task, seed, args)
    data = load_dataset(config.run.dataset, seed=seed)
    features = 1
    for dim in data.input_shape:
        features *= int(dim)
    start = gromo_start_width(features, data.num_classes, int(esper["detail"]["params_initial"]))
    return train_gromo(
        data,
        start_width=start,
        target_params=int(esper["params"]),
        epochs=config.run.epochs,
        batch_size=config.run.batch_size,
        learning_rate=config.run.learning_rate,
        seed=seed,
    )


RUNNERS = {
    STATIC: lambda task, seed, args, esper: run_static(task, seed, args),
    ESPER: lambda task, seed, args, esper: run_esper(task, seed, args),
    BEST_STATIC: run_best_static,
    GROWN: run_grown_from_scratch,
    GROMO: run_gromo,
}


def _seeds(text: str) -> list[int]:
    """ "0-4" or "0,2,5" (or a mix) -> sorted seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            seeds.update(range(int(low), int(high) + 1))
        elif part.strip():
            seeds.add(int(part))
    return sorted(seeds)


def _names(text: str, known: dict[str, Any] | tuple[str, ...], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help=f"of {', '.join(TASKS)}")
    parser.add_argument("--seeds", default="0-4", help='"0-4" or "0,1,2"')
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs", type=int, default=EsperConfig().run.epochs)
    parser.add_argument("--results", default="runs/efficacy/results.json", help="per-seed results (resumable)")
    parser.add_argument("--out", default="runs/efficacy", help="Esper's run folders")
    parser.add_argument("--assets-dir", help="embedded Urza folder (default: the shared cache)")
    parser.add_argument("--render", action="store_true", help="print the table of --results and exit")
    args = parser.parse_args()
    tasks = _names(args.tasks, TASKS, "tasks")
    methods = _names(args.methods, METHODS, "methods")
    results = Path(args.results)
    if args.render:
        _, cells = load_cells(results)
        print(render_table(cells, tasks))
        print("\n".join(["", *verdicts(cells, tasks)]))
        return
    torch.set_num_threads(1)
    defaults = EsperConfig().run
    settings = {"epochs": args.epochs, "batch_size": defaults.batch_size, "learning_rate": defaults.learning_rate}
    store = ResultStore(results, settings)
    print(f"{settings}; torch {torch.__version__}, 1 thread; results in {results}", flush=True)
    for task_name in tasks:
        task = TASKS[task_name]
        for seed in _seeds(args.seeds):
            for method in [m for m in (STATIC, ESPER, BEST_STATIC, GROWN, GROMO) if m in methods]:
                if store.get(task.name, method, seed) is not None:
                    continue
                esper = store.get(task.name, ESPER, seed)
                if method not in (STATIC, ESPER) and esper is None:
                    print(f"{task.name} seed {seed}: {method} waits for the Esper cell", flush=True)
                    continue
                result = RUNNERS[method](task, seed, args, esper)
                store.put({"task": task.name, "method": method, "seed": seed, **result})
                print(
                    f"{task.name} seed {seed} {method}: test {100 * result['test_accuracy']:.2f} %, "
                    f"{result['params']} params, {result['wall_seconds']:.1f} s",
                    flush=True,
                )
    print()
    print(render_table(store.cells, tasks))
    print("\n".join(["", *verdicts(store.cells, tasks)]))


if __name__ == "__main__":
    main()
