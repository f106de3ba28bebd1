"""`esper.Trainer` in a script torchrun started trains data-parallel: one run folder, one model on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import json, os, sys

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import esper

    root = sys.argv[1]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 4, generator=generator)
    y = (x[:, 0] * x[:, 1] > 0).long()
    # Every rank reads every batch and keeps its rows: the same seeded shuffle on every rank.
    train = DataLoader(TensorDataset(x[:480], y[:480]), batch_size=64, shuffle=True, generator=generator)
    val = DataLoader(TensorDataset(x[480:], y[480:]), batch_size=120)
    torch.manual_seed(int(os.environ["RANK"]))  # different initial values per rank: rank 0's are taken
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    config = esper.load_config(
        overrides={
            "assets.data_dir": root + "/assets",
            "assets.template_ids": ["widen_k4"],
            "assets.pipelines": ["fast"],
            "assets.wait_for_kernels": True,
            "tamiyo.warmup_epochs": 1,
            "tamiyo.patience": 1,
            "tamiyo.min_delta": 0.5,
            "tamiyo.min_epochs_to_finish": 1,
            "kasmina.ramp_steps": 5,
            "kasmina.training_min_steps": 3,
            "kasmina.stabilization_steps": 3,
            "kasmina.fine_tuning_min_steps": 3,
        }
    )
    result = esper.Trainer(model, train, val, epochs=6, config=config, out=root + "/run").fit()
    with open(f"{root}/rank{os.environ['RANK']}.json", "w") as handle:
        json.dump(result.summary, handle, default=str)
    """
)


def test_two_ranks_of_a_trainer_end_with_the_same_model_and_one_run_folder(tmp_path: Path) -> None:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summaries = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["world_size"] == 2 and written["ranks_agree"] is True
    assert written["seeds_germinated"] >= 1
    assert summaries[0]["ranks"] == summaries[1]["ranks"] == written["ranks"]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == written["epochs"]
