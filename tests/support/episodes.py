"""A finished episode's result for tests that score episodes without playing them."""

from __future__ import annotations

from collections.abc import Sequence

from esper.leyline.v1 import policy_pb2
from esper.simic.episodes import EpisodeResult


def episode_result(
    *,
    score: float,
    policy: str = "p",
    task: str = "t",
    seed: int = 0,
    params_initial: int = 100,
    params_final: int | None = None,
    transitions: Sequence[policy_pb2.PolicyTransition] = (),
) -> EpisodeResult:
    """An episode whose delivered (and best and final) validation score is `score`; nothing culled or rolled back."""
    return EpisodeResult(
        task=task,
        seed=seed,
        policy=policy,
        best_val_score=score,
        final_val_score=score,
        test_accuracy=0.0,
        params_initial=params_initial,
        params_final=params_initial if params_final is None else params_final,
        germinated=0,
        fossilized=0,
        culled=0,
        rollbacks=0,
        fallbacks=0,
        wall_seconds=1.0,
        transitions=tuple(t.SerializeToString() for t in transitions),
        delivered_val_score=score,
    )
