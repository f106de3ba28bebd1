"""Simic's episodes end: real short Esper runs in Simic's worker processes, with their transitions.

The regression this guards: an episode joined the run's kernel prefetch, which since compiles
left the training process follows the asset pipeline until the run ends, so every episode
(behaviour-cloning data, PPO, the validation gate, `make policy`) waited forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.simic.curriculum import task
from esper.simic.episodes import EpisodeSpec, EpisodeWorkers

pytestmark = pytest.mark.integration

# One width template and one pipeline: the cold compile of a fresh asset folder stays short.
FAST_ASSETS = (("assets.template_ids", ["widen_k4"]), ("assets.pipelines", ["fast"]))


def test_heuristic_and_static_episodes_end_with_their_transitions(tmp_path: Path) -> None:
    smoke = task("rings-smoke")
    common = {"assets_dir": str(tmp_path / "assets"), "tasks_dir": str(tmp_path), "overrides": FAST_ASSETS}
    specs = [EpisodeSpec(smoke, 0, "heuristic-v1", **common), EpisodeSpec(smoke, 0, "static", **common)]  # type: ignore[arg-type]
    with EpisodeWorkers(1, timeout_seconds=600) as workers:
        heuristic, static = list(workers.play(specs))

    assert heuristic.error == "" and static.error == "", (heuristic.error, static.error)
    assert len(heuristic.parsed_transitions()) == smoke.epochs  # one decision boundary per epoch
    assert heuristic.germinated >= 1 and heuristic.params_final > heuristic.params_initial
    assert static.germinated == 0 and static.params_final == static.params_initial
