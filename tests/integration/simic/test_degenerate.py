"""Under the reward, the degenerate policies score below heuristic-v1 on real episodes.

Real short Esper runs of curriculum tasks (under-capacity starts), each scored against its
static twin. "Never germinate" is its own static twin and scores 0; "germinate everything"
pays for its parameters and for the runs it hurts. Slow: two dozen short runs.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from esper.simic.baselines import GERMINATE_ALL, NEVER_GERMINATE
from esper.simic.curriculum import task
from esper.simic.episodes import EpisodeWorkers
from esper.simic.gate import score_suite
from esper.simic.reward import RewardConfig
from esper.simic.twins import StaticTwins

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = [task("digits"), task("stripes-6c"), task("blobs-6c")]
SEEDS = [0, 1]


def test_never_and_everything_score_below_the_heuristic(tmp_path: Path) -> None:
    reward = RewardConfig()
    with EpisodeWorkers(2) as workers:
        twins = StaticTwins(tmp_path / "twins", tasks_dir=str(tmp_path))
        scores = {
            policy: score_suite(
                policy, TASKS, SEEDS, workers=workers, twins=twins, reward=reward, tasks_dir=str(tmp_path)
            )
            for policy in ("heuristic-v1", NEVER_GERMINATE, GERMINATE_ALL)
        }
    assert all(score.failures == 0 for score in scores.values()), {p: s.failures for p, s in scores.items()}
    assert scores[NEVER_GERMINATE].mean == pytest.approx(0.0, abs=1e-9)
    heuristic = scores["heuristic-v1"].mean
    assert heuristic > scores[NEVER_GERMINATE].mean
    assert heuristic > scores[GERMINATE_ALL].mean
    grew = statistics.mean(r.params_final / r.params_initial for r in scores[GERMINATE_ALL].episodes)
    assert grew > 5  # it really did germinate everything it could
