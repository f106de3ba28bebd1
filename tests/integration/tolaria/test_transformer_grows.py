"""A causal transformer on the text corpus grows a layer that pays: fossilized, and better than its static twin.

The regression this guards: a TRAINING seed's first-order objective has no minimum, so a
transformer block's kernel grew without bound before its graft, the graft wrecked the
model, and every run was rolled back to its static twin (docs/lifecycle.md, "How a seed
learns while TRAINING"). Real compiles of one template, the stdlib corpus, 14 epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from esper.config import load_config
from esper.tolaria.session import run_training

pytestmark = pytest.mark.integration


def _run(tmp_path: Path, name: str, *, static: bool) -> dict[str, Any]:
    config = load_config(
        None,
        {
            "run.dataset": "text",
            "run.host": "transformer",
            "run.seed": 0,
            "run.epochs": 14,
            "run.device": "cpu",
            "run.static": static,
            "run.out": str(tmp_path / name),
            "assets.data_dir": str(tmp_path / "assets"),
            "assets.template_ids": ["causal_block_h2"],
            "assets.pipelines": ["standard"],
            "assets.wait_for_kernels": True,
        },
    )
    return run_training(config).summary


def test_a_transformer_grows_a_layer_and_beats_its_static_twin(tmp_path: Path) -> None:
    static = _run(tmp_path, "static", static=True)
    grown = _run(tmp_path, "esper", static=False)

    assert grown["metric_name"] == "bits_per_character"
    assert grown["seeds_fossilized"] >= 1 and grown["rollbacks"] == 0
    assert grown["params_final"] > static["params_final"]
    assert grown["best_val_metric"] < static["best_val_metric"]
