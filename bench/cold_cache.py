"""A first run on a never-seen activation shape with an empty asset cache, against the same run on a warm cache.

Three `esper run`s on one fresh asset folder, each in its own process as a researcher
would start them (embedded, default settings, no static baseline):

1. cold: the cache is empty. The run must not wait for compiles (asset wait <= 5 s);
   it germinates once Tamiyo's first choices are compiled and characterized.
2. fill: the same command in the deterministic mode (`assets.wait_for_kernels`),
   which waits before its first epoch until every blueprint is characterized: its
   asset wait is what the first run would have waited before this issue (minus
   what the cold run already compiled).
3. warm: the cold command again; every kernel is validated.

For each: asset wait (seconds before the first epoch spent on the asset pipeline),
when the first epoch started (seconds after the command was launched: Python's and
torch's imports, the data, the model and the asset pipeline's start), the epoch of the
first germination, wall time and the kernels validated at the end.

Then the kernel load wait during a compile pass: this process times loading a kernel
(`load_kernel_module`, as Kasmina loads one) over and over, idle, while a thread here
compiles STANDARD passes (how compiles ran in the training process before: a load
waits for the export lock the pass holds), and while a compile worker compiles the same
in children of its fork server (how the embedded pipeline compiles now).

Prints markdown; never part of the tests.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/cold_cache.py [--dataset digits] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub


def _run(args: argparse.Namespace, root: Path, name: str, *, wait: bool) -> dict[str, Any]:
    config = root / f"{name}.yaml"
    config.write_text(
        f"assets:\n  data_dir: {root / 'assets'}\n  wait_for_kernels: {'true' if wait else 'false'}\n",
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "esper.cli.main",
        "-v",
        "run",
        "--dataset",
        args.dataset,
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--no-baseline",
        "--json",
        "--out",
        str(root / name),
        "--config",
        str(config),
        "--quiet",
    ]
    if args.host_width:
        command += ["--host-width", str(args.host_width)]
    launched, started = time.time(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    (root / f"{name}.stderr").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"{name} run failed:\n{done.stderr[-3000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["process_seconds"] = time.perf_counter() - started
    summary["first_epoch_start"] = _first_epoch_start(root / name) - launched
    summary["validated"] = _validated(root / "assets")
    return summary


def _first_epoch_start(folder: Path) -> float:
    """When the first epoch began (UNIX time): its completion event's time minus its wall time."""
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    first = next(event for event in events if event["kind"] == "epoch_completed")
    metrics = json.loads((folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    ended = datetime.fromisoformat(first["event_time"].replace("Z", "+00:00")).timestamp()
    return ended - float(metrics["wall_seconds"])


def _validated(assets: Path) -> int:
    hub = UrzaHub.open(UrzaConfig(data_dir=str(assets)))
    try:
        query = kernel_pb2.KernelQuery(status=kernel_pb2.KERNEL_STATUS_VALIDATED)
        return len(hub.query_kernels(urza_pb2.QueryKernelsRequest(query=query, page_size=1000)).result.kernels)
    finally:
        hub.close()


def _timed_loads(load: Callable[[], object], seconds: float) -> list[float]:
    timings = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        started = time.perf_counter()
        load()
        timings.append(time.perf_counter() - started)
    return timings


def _while_compiling(compile_once: Callable[[], object], load: Callable[[], object], seconds: float) -> list[float]:
    """Loads timed while `compile_once` runs again and again in a thread."""
    stop = threading.Event()

    def compiling() -> None:
        while not stop.is_set():
            compile_once()

    thread = threading.Thread(target=compiling, daemon=True)
    thread.start()
    time.sleep(1.0)  # the first pass is under way
    try:
        return _timed_loads(load, seconds)
    finally:
        stop.set()
        thread.join()


def _load_waits(root: Path, seconds: float) -> list[tuple[str, list[float]]]:
    """Kernel load times in this process: idle, beside an in-process compile, beside a forked one."""
    from esper.karn.catalog import TemplateCatalog
    from esper.tezzeret.artifacts import load_kernel_module
    from esper.tezzeret.config import FAST, STANDARD, TezzeretConfig
    from esper.tezzeret.forked import ForkedCompiler, compile_server
    from esper.tezzeret.pipelines import compile_blueprint

    catalog = TemplateCatalog.default()
    config = TezzeretConfig(worker_id="bench", wal_dir=root / "wal", work_dir=root / "work")
    loaded = compile_blueprint(catalog.get_template("mlp_gelu_e2").ir, FAST, config).artifact
    heavy = catalog.get_template("transformer_block_h2").ir

    def load() -> object:
        return load_kernel_module(loaded, FAST)

    rows = [("idle", _timed_loads(load, seconds))]
    rows.append(
        (
            "a STANDARD compile in a thread of this process (before)",
            _while_compiling(lambda: compile_blueprint(heavy, STANDARD, config), load, seconds),
        )
    )
    with compile_server("bench-forks") as forks:
        forked = ForkedCompiler(forks, root / "requests")
        forked(heavy, STANDARD, config)  # the zygote's imports, not timed
        rows.append(
            (
                "a STANDARD compile in a forked child (now)",
                _while_compiling(lambda: forked(heavy, STANDARD, config), load, seconds),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host-width", type=int, default=0, help="a host width other runs have not used")
    parser.add_argument("--keep", help="keep the runs and the cache in this folder")
    parser.add_argument("--load-seconds", type=float, default=15.0, help="how long each kernel load case runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esper-cold-cache-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        rows = [
            ("cold cache, no wait (default)", _run(args, root, "cold", wait=False)),
            ("fill the cache (wait_for_kernels)", _run(args, root, "fill", wait=True)),
            ("warm cache, no wait (default)", _run(args, root, "warm", wait=False)),
        ]
        loads = _load_waits(root, args.load_seconds)
    print(f"\n### Asset wait, cold vs warm cache ({args.dataset}, {args.epochs} epochs, seed {args.seed})\n")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print(
        "| run | asset wait (s) | first epoch starts (s after launch) | first germination (epoch) "
        "| seeds germinated | wall (s) | kernels validated |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, summary in rows:
        first = summary.get("first_germination_epoch")
        print(
            f"| {label} | {summary['asset_wait_seconds']:.2f} | {summary['first_epoch_start']:.1f} "
            f"| {'-' if first is None else first} | {summary['seeds_germinated']} | {summary['wall_seconds']:.1f} "
            f"| {summary['validated']} |"
        )
    print("\n### A kernel load in the training process while a compile runs\n")
    print("| while | loads | p50 (ms) | p95 (ms) | max (ms) |")
    print("|---|---:|---:|---:|---:|")
    for label, timings in loads:
        ordered = sorted(timings)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(
            f"| {label} | {len(ordered)} | {statistics.median(ordered) * 1e3:.0f} | {p95 * 1e3:.0f} "
            f"| {ordered[-1] * 1e3:.0f} |"
        )


if __name__ == "__main__":
    main()
