"""What a learned policy reads and what Simic learns from are scores, as heuristic-v1 compares them.

A run judged by a loss (lower is better) and the same trajectory judged by accuracy must
give the same masks, actions and trends; only the score itself differs, by the loss's
negation.
"""

from __future__ import annotations

import numpy as np
import pytest

from esper.leyline.v1 import lifecycle_pb2, policy_pb2
from esper.tamiyo.graph_proto import graph_from_proto, tensor_from_proto
from esper.tamiyo.masks import GERMINATE
from esper.tamiyo.schema import GLOBAL, GLOBAL_FEATURES, SEED
from esper.tamiyo.transitions import seed_actions_from_proto
from tests.support.tamiyo import PLATEAU, FakeKernels, SeedSimulator, kernel, make_controller, run_epochs
from tests.support.transitions import Recorder

S = lifecycle_pb2
# Plateau, germination, a dip that harms (cull), another plateau, a germination that pays (fossilize).
SCRIPT = [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.62, 0.65, 0.66, 0.66, 0.66, 0.70, 0.71, 0.72, 0.75]


def _record(direction: int) -> list[policy_pb2.PolicyTransition]:
    recorder = Recorder()
    controller = make_controller(FakeKernels([kernel("k1", params=100, latency_ms=0.3)]))
    controller.attach_transitions(recorder)
    sim = SeedSimulator(metric_direction=direction)
    sim.seeds["net.3"].dead = 0.4
    run_epochs(controller, sim, SCRIPT)
    return recorder.transitions


def _global(transition: policy_pb2.PolicyTransition, name: str) -> float:
    return float(graph_from_proto(transition.observation).features[GLOBAL][0, GLOBAL_FEATURES.index(name)])


def test_a_lower_is_better_run_records_the_decisions_and_trends_of_the_same_accuracy_run() -> None:
    by_accuracy = _record(S.METRIC_DIRECTION_UNSPECIFIED)
    by_loss = _record(S.METRIC_DIRECTION_LOWER_IS_BETTER)
    assert len(by_loss) == len(by_accuracy) == len(SCRIPT)
    germinations = 0
    for accuracy, loss in zip(by_accuracy, by_loss, strict=True):
        assert accuracy.metric_direction == S.METRIC_DIRECTION_UNSPECIFIED
        assert loss.metric_direction == S.METRIC_DIRECTION_LOWER_IS_BETTER
        # The simulator's loss is 1 - accuracy; its score is the loss negated.
        assert loss.validation_score == pytest.approx(accuracy.validation_score - 1.0, abs=1e-6)
        assert _global(loss, "validation_score") == pytest.approx(_global(accuracy, "validation_score") - 1.0, abs=1e-6)
        assert _global(loss, "best_validation_score") == pytest.approx(
            _global(accuracy, "best_validation_score") - 1.0, abs=1e-6
        )
        for trend in ("score_change", "epochs_since_improvement", "plateau"):
            assert _global(loss, trend) == pytest.approx(_global(accuracy, trend), abs=1e-5), trend
        np.testing.assert_allclose(
            graph_from_proto(loss.observation).features[SEED],
            graph_from_proto(accuracy.observation).features[SEED],
            atol=1e-5,
        )
        np.testing.assert_array_equal(tensor_from_proto(loss.action_mask), tensor_from_proto(accuracy.action_mask))
        actions = seed_actions_from_proto(loss.seed_actions)
        np.testing.assert_array_equal(actions, seed_actions_from_proto(accuracy.seed_actions))
        germinations += int((actions == GERMINATE).sum())
    assert germinations >= 2
