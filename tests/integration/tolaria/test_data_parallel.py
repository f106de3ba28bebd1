"""`torchrun --standalone --nproc-per-node 2 -m esper run`: one run folder, world_size 2, every rank the same.

Two gloo processes on digits, seeds grown: rank 0 decides and writes the run folder,
both ranks apply the same commands at the same boundaries and end with the same
weights (summary.json's `ranks`), and a resumed run (`esper run --nproc 2 --resume`)
continues from rank 0's checkpoint. The asset cache is filled once for the module (the
deterministic mode, one template, FAST kernels).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _config(root: Path) -> Path:
    config = {
        "assets": {
            "data_dir": str(root / "assets"),
            "template_ids": ["conv3x3_relu"],
            "pipelines": ["fast"],
            "wait_for_kernels": True,
        },
        "kasmina": {"ramp_steps": 10, "training_min_steps": 5, "stabilization_steps": 5, "fine_tuning_min_steps": 5},
        "tamiyo": {"warmup_epochs": 1, "patience": 1, "min_delta": 0.5, "min_epochs_to_finish": 1},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
TORCHRUN += ["-m", "esper", "run"]
NPROC = [sys.executable, "-m", "esper", "run", "--nproc", "2"]


def _torchrun(root: Path, out: Path, epochs: int, *extra: str, launch: list[str] = TORCHRUN) -> dict[str, Any]:
    command = [
        *launch,
        "--dataset",
        "digits",
        "--epochs",
        str(epochs),
        "--seed",
        "3",
        "--no-baseline",
        "--json",
        "--out",
        str(out),
        "--config",
        str(root / "config.yaml"),
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    _config(root)
    return root


@pytest.fixture(scope="module")
def grown(root: Path) -> tuple[Path, dict[str, Any]]:
    out = root / "run"
    return out, _torchrun(root, out, 6)


def test_two_ranks_write_one_run_folder_with_world_size_2(grown: tuple[Path, dict[str, Any]], root: Path) -> None:
    out, printed = grown
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == printed["world_size"] == 2
    assert summary["epochs"] == 6 and summary["seeds_germinated"] >= 1
    # Written once: one line per epoch, one event per sequence number, no other folder.
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    sequences = [json.loads(line)["sequence"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert sequences == list(range(1, len(sequences) + 1))
    assert sorted(path.name for path in root.iterdir()) == ["assets", "config.yaml", "run"]


def test_every_rank_made_the_same_decisions_and_ends_with_the_same_weights(
    grown: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = grown
    ranks = summary["ranks"]
    assert len(ranks) == 2 and ranks[0] == ranks[1] and summary["ranks_agree"] is True
    assert int(ranks[0]["decision_count"]) > 0


@pytest.mark.slow
def test_a_data_parallel_run_resumes_from_rank_0_s_checkpoint(root: Path) -> None:
    out = root / "resumed"
    first = _torchrun(root, out, 3, launch=NPROC)
    assert first["epochs"] == 3 and first["world_size"] == 2
    resumed = _torchrun(root, out, 5, "--resume", launch=NPROC)
    assert resumed["run_id"] == first["run_id"] and resumed["ranks_agree"] is True
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 5
