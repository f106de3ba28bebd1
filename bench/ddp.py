"""Data-parallel training on this machine: time per sample with 1 and 2 processes, and how close they stay.

Throughput: the training loop alone (`esper.tolaria.loop.train_epoch`) over the default
host of a data set, one process against two gloo ranks under torchrun, each rank
with one thread (`OMP_NUM_THREADS=1`); seconds per training sample over the timed
epochs (the first epoch warms up and is not timed), and their ratio.

Equivalence: `esper run` with one process and with `--nproc 2` at the same seed and
the same global batch (every rank trains on its half of each batch): static for one
epoch and for `--run-epochs`, and growing (the deterministic asset mode, so both runs
see the same kernels, and Tamiyo settings that germinate early): the test metric of
each, the largest difference between their saved weights (static only: a grown
model's shape can differ) and whether they made the same decisions.

Prints markdown; never part of the tests.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/ddp.py [--dataset mnist5k] [--host-width 16] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]


def _worker(args: argparse.Namespace) -> None:
    """One process of the throughput measurement (alone, or one rank under torchrun)."""
    from esper.config import load_config
    from esper.data import load_dataset
    from esper.hosts import build_host
    from esper.kasmina import MorphableModel
    from esper.tolaria.batches import TensorData
    from esper.tolaria.data_parallel import join
    from esper.tolaria.loop import train_epoch
    from esper.tolaria.optimizers import OptimizerSet, adam_factory
    from esper.tolaria.session import dataset_objective, run_host_spec

    torch.set_num_threads(1)
    overrides = {"run.dataset": args.dataset, "run.host_width": args.host_width or None, "run.seed": 0}
    config = load_config(None, overrides)
    data = load_dataset(args.dataset, seed=0, validation_fraction=config.run.validation_fraction)
    ranks = join(torch.device("cpu"))
    model = MorphableModel(build_host(run_host_spec(config, data)), [], config.kasmina)
    if ranks is not None:
        ranks.sync_model(model)
    optimizers = OptimizerSet(model, adam_factory(1e-3, 0.0), adam_factory(1e-3, 0.0))
    batches, objective = TensorData(data, config.run.batch_size), dataset_objective(data)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(args.epochs + 1):
        started = time.perf_counter()
        train_epoch(model, optimizers, batches.train_batches(generator), objective=objective, ranks=ranks)
        seconds.append(time.perf_counter() - started)
    if ranks is None or ranks.is_main:
        timed = seconds[1:]
        print(json.dumps({"per_sample": sum(timed) / (len(timed) * len(data.x_train)), "rows": len(data.x_train)}))
    if ranks is not None:
        ranks.close()


def _throughput(args: argparse.Namespace, processes: int) -> dict[str, Any]:
    worker = [__file__, "--worker", "--dataset", args.dataset, "--epochs", str(args.epochs)]
    worker += ["--host-width", str(args.host_width)]
    command = [*TORCHRUN, str(processes), *worker] if processes > 1 else [sys.executable, *worker]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"throughput with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


GROWING = """
assets: {{data_dir: {assets}, wait_for_kernels: true, pipelines: [fast]}}
tamiyo: {{warmup_epochs: 1, patience: 1, min_delta: 0.5, min_epochs_to_finish: 1}}
kasmina: {{ramp_steps: 10, training_min_steps: 5, stabilization_steps: 5, fine_tuning_min_steps: 5}}
"""


def _run(
    args: argparse.Namespace, root: Path, name: str, processes: int, *, epochs: int, static: bool
) -> dict[str, Any]:
    config = root / "config.yaml"
    config.write_text(GROWING.format(assets=root / "assets"), encoding="utf-8")
    command = [sys.executable, "-m", "esper", "run", "--dataset", args.run_dataset, "--epochs", str(epochs)]
    command += ["--seed", "0", "--no-baseline", "--json", "--quiet", "--out", str(root / name), "--config", str(config)]
    command += ["--nproc", str(processes)]
    if static:
        command.append("--static")
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _decisions(folder: Path) -> list[tuple[Any, ...]]:
    moves = []
    for line in (folder / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "decision" and event["decision"].get("command_type") != "COMMAND_TYPE_UNSPECIFIED":
            d = event["decision"]
            moves.append((d["epoch"], d.get("seed_id"), d["command_type"]))
    return moves


def _weight_difference(one: Path, two: Path) -> float:
    a = torch.load(one / "model.pt", weights_only=True)
    b = torch.load(two / "model.pt", weights_only=True)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return float("nan")
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--host-width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of the throughput measurement")
    parser.add_argument("--run-dataset", default="digits", help="data set of the runs compared")
    parser.add_argument("--run-epochs", type=int, default=8, help="epochs of the runs compared")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    one, two = _throughput(args, 1), _throughput(args, 2)
    with tempfile.TemporaryDirectory(prefix="esper-ddp-bench-") as scratch:
        root = Path(scratch)
        kinds = {"static, 1 epoch": (1, True), f"static, {args.run_epochs} epochs": (args.run_epochs, True)}
        kinds[f"growing, {args.run_epochs} epochs"] = (args.run_epochs, False)
        rows = []
        for index, (label, (epochs, static)) in enumerate(kinds.items()):
            alone, paired = (_run(args, root, f"{index}-{n}", n, epochs=epochs, static=static) for n in (1, 2))
            moves = _decisions(root / f"{index}-1"), _decisions(root / f"{index}-2")
            same = "-" if static else f"{'yes' if moves[0] == moves[1] else 'no'} ({len(moves[0])} / {len(moves[1])})"
            diff = _weight_difference(root / f"{index}-1", root / f"{index}-2") if static else float("nan")
            rows.append((label, alone, paired, same, diff))
    print(f"\n### Data parallel on this machine ({args.dataset}, host width {args.host_width}, gloo)\n")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| processes | training time per sample (µs) | speed-up |")
    print("|---:|---:|---:|")
    print(f"| 1 | {one['per_sample'] * 1e6:.1f} | 1.00 |")
    print(f"| 2 | {two['per_sample'] * 1e6:.1f} | {one['per_sample'] / two['per_sample']:.2f} |")
    print(f"\n{args.run_dataset}, same seed and global batch, `esper run` vs `esper run --nproc 2`:\n")
    print("| run | test metric, 1 process | test metric, 2 processes | same decisions | max weight difference |")
    print("|---|---:|---:|---|---:|")
    for label, a, b, same, diff in rows:
        shown = "-" if diff != diff else f"{diff:.1e}"
        print(f"| {label} | {a['final_test_metric']:.4f} | {b['final_test_metric']:.4f} | {same} | {shown} |")


if __name__ == "__main__":
    main()
