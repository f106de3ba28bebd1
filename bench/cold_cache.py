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
the epoch of the first germination, wall time and the kernels validated at the end.
Prints markdown; never part of the tests.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/cold_cache.py [--dataset digits] [--epochs 20]
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
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    (root / f"{name}.stderr").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"{name} run failed:\n{done.stderr[-3000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["process_seconds"] = time.perf_counter() - started
    summary["validated"] = _validated(root / "assets")
    return summary


def _validated(assets: Path) -> int:
    hub = UrzaHub.open(UrzaConfig(data_dir=str(assets)))
    try:
        query = kernel_pb2.KernelQuery(status=kernel_pb2.KERNEL_STATUS_VALIDATED)
        return len(hub.query_kernels(urza_pb2.QueryKernelsRequest(query=query, page_size=1000)).result.kernels)
    finally:
        hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host-width", type=int, default=0, help="a host width other runs have not used")
    parser.add_argument("--keep", help="keep the runs and the cache in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esper-cold-cache-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        rows = [
            ("cold cache, no wait (default)", _run(args, root, "cold", wait=False)),
            ("fill the cache (wait_for_kernels)", _run(args, root, "fill", wait=True)),
            ("warm cache, no wait (default)", _run(args, root, "warm", wait=False)),
        ]
    print(f"\n### Asset wait, cold vs warm cache ({args.dataset}, {args.epochs} epochs, seed {args.seed})\n")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| run | asset wait (s) | first germination (epoch) | seeds germinated | wall (s) | kernels validated |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, summary in rows:
        first = summary.get("first_germination_epoch")
        print(
            f"| {label} | {summary['asset_wait_seconds']:.2f} | {'-' if first is None else first} | "
            f"{summary['seeds_germinated']} | {summary['wall_seconds']:.1f} | {summary['validated']} |"
        )


if __name__ == "__main__":
    main()
