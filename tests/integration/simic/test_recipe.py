"""`make policy`'s recipe end to end on the smoke suite: behaviour cloning, PPO, the gate, the artifact and the curve.

Real episodes in Simic's worker processes, two PPO iterations. Slow (the kernels of the
smoke task's shapes compile once into the temporary asset folder); `make test-all` runs it.
The regressions it guards: episodes that waited forever on the kernel prefetch, and a
rollout whose episode scores were one episode's per-boundary scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from esper.simic.ppo import PpoConfig
from esper.simic.recipe_gnn import GnnRecipe, make_gnn, plot_curve
from esper.tamiyo.artifact import read_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_recipe_trains_gates_and_writes_a_policy_with_its_curve(tmp_path: Path) -> None:
    recipe = GnnRecipe(
        policy_id="gnn-smoke",
        run_seeds=1,
        bc_steps=50,
        gate_suite="smoke",
        gate_seeds=1,
        workers=2,
        ppo=PpoConfig(
            iterations=2,
            episodes_per_iteration=2,
            suite="smoke",
            validation_suite="smoke",
            run_seeds=1,
            validate_every=1,
        ),
    )
    work = tmp_path / "work"
    card = make_gnn(recipe, out_dir=tmp_path / "out", work_dir=work, assets_dir=str(tmp_path / "assets"))

    assert card["policy_id"] == "gnn-smoke"
    assert "gate" in card["validation"]
    artifact = read_policy(tmp_path / "out" / "gnn-smoke.safetensors")
    assert artifact.policy_id == "gnn-smoke"
    rows = [json.loads(line) for line in (work / "training-curve.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [0, 1, 2]  # the clone is validated before PPO starts
    assert all(math.isfinite(row["validation_score"]) for row in rows)
    assert all(row["episodes"] == 2 and math.isfinite(row["reward"]) for row in rows[1:])
    plot_curve(work / "training-curve.jsonl", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0
