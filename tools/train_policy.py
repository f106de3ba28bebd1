"""`make policy`: train the shipped learned policy gnn-v1 (esper.simic.recipe_gnn) and plot its training curve.

    .venv/bin/python tools/train_policy.py [--workers 2] [--iterations N] [--out DIR] [--work DIR]

Writes `<out>/gnn-v1.safetensors` and `gnn-v1.json` (default: the package's shipped policies),
the curve as `<work>/training-curve.jsonl` and `docs/policy-training.png`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import torch

from esper.simic.ppo import PpoConfig
from esper.simic.recipe_gnn import GnnRecipe, make_gnn, plot_curve

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=PpoConfig().iterations)
    parser.add_argument("--run-seeds", type=int, default=GnnRecipe().run_seeds)
    parser.add_argument("--out", default=str(ROOT / "server" / "esper" / "tamiyo" / "policies"))
    parser.add_argument("--work", default=str(ROOT / ".esper" / "policy-recipe"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "policy-training.png"))
    parser.add_argument("--assets-dir", default="", help="embedded asset cache (default: Esper's shared one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    base = GnnRecipe()
    recipe = dataclasses.replace(
        base,
        workers=args.workers,
        run_seeds=args.run_seeds,
        seed=args.seed,
        ppo=dataclasses.replace(base.ppo, iterations=args.iterations, seed=args.seed),
    )
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    card = make_gnn(recipe, out_dir=Path(args.out), work_dir=work, assets_dir=args.assets_dir)
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    plot_curve(work / "training-curve.jsonl", Path(args.plot))
    print(f"{card['policy_id']}: {card['validation']['gate']}")
    print(f"make policy took {(time.perf_counter() - started) / 60:.1f} minutes with {args.workers} workers")


if __name__ == "__main__":
    main()
