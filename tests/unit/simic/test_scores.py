"""Simic reads validation scores: a run judged by a metric where lower is better is rewarded as it improves."""

from __future__ import annotations

import pytest

from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2, simic_pb2
from esper.simic.config import SimicConfig
from esper.simic.episodes import EpisodeResult, run_scores
from esper.simic.gate import outcome
from esper.simic.requests import check_record_transitions
from esper.simic.reward import RewardConfig, reward_terms
from tests.support.episodes import episode_result
from tests.support.transitions import heuristic_transitions

S = lifecycle_pb2


def _summary(direction: str, best: float, saved: float) -> dict[str, object]:
    """The metric fields of a run folder's summary.json, as Tolaria writes them."""
    return {
        "metric_name": "bits_per_character" if direction.endswith("LOWER_IS_BETTER") else "accuracy",
        "metric_direction": direction,
        "best_val_metric": best,
        "saved": {"epoch": 7, "val_metric": saved, "final_val_metric": saved + 0.01, "reason": "best"},
    }


def test_a_run_s_scores_are_its_metric_negated_when_lower_is_better() -> None:
    rows = [{"val_metric": 2.4, "val_accuracy": 0.0}, {"val_metric": 2.2, "val_accuracy": 0.0}]
    scores = run_scores(_summary("METRIC_DIRECTION_LOWER_IS_BETTER", 2.1, 2.15), rows)
    assert (scores.best, scores.final, scores.delivered) == pytest.approx((-2.1, -2.2, -2.15))
    accuracy = run_scores(_summary("METRIC_DIRECTION_HIGHER_IS_BETTER", 0.9, 0.88), [{"val_metric": 0.87}])
    assert (accuracy.best, accuracy.final, accuracy.delivered) == pytest.approx((0.9, 0.87, 0.88))
    unsaved = run_scores({"metric_direction": "METRIC_DIRECTION_HIGHER_IS_BETTER", "best_val_metric": 0.5}, [])
    assert unsaved.delivered is None


def _episode(policy: str, delivered: float) -> EpisodeResult:
    return episode_result(task="text", policy=policy, score=delivered, params_initial=1000)


def test_fewer_bits_than_the_static_twin_is_a_gain_and_more_is_harm() -> None:
    twin = _episode("static", -2.10)  # 2.10 bits per character
    better = reward_terms(outcome(_episode("heuristic-v1", -2.00), twin), RewardConfig())
    worse = reward_terms(outcome(_episode("heuristic-v1", -2.20), twin), RewardConfig())
    assert better.gain == pytest.approx(10.0) and better.harm == 0.0
    assert worse.gain == pytest.approx(-10.0) and worse.harm == pytest.approx(10.0)


def test_a_transition_s_score_is_checked_against_its_metric_direction() -> None:
    config = SimicConfig()
    transition = heuristic_transitions(runs=1)[0]
    transition.metric_direction = S.METRIC_DIRECTION_LOWER_IS_BETTER
    transition.validation_score = -2.3
    check_record_transitions(simic_pb2.RecordTransitionsRequest(transitions=[transition]), config)
    transition.metric_direction = S.METRIC_DIRECTION_UNSPECIFIED
    with pytest.raises(InvalidArgument) as raised:
        check_record_transitions(simic_pb2.RecordTransitionsRequest(transitions=[transition]), config)
    assert [v.field for v in raised.value.violations] == ["transitions[0].validation_score"]
    transition.metric_direction = 9  # type: ignore[assignment]
    with pytest.raises(InvalidArgument) as raised:
        check_record_transitions(simic_pb2.RecordTransitionsRequest(transitions=[transition]), config)
    assert [v.field for v in raised.value.violations] == ["transitions[0].metric_direction"]
