"""The reward, term by term, and why the degenerate policies lose under it."""

from __future__ import annotations

import numpy as np
import pytest

from esper.simic.reward import EpisodeOutcome, RewardConfig, advantages, episode_score, reward_terms, step_rewards

CONFIG = RewardConfig()


def test_each_term_counts_what_it_says() -> None:
    config = RewardConfig(parameter_cost=1.0)
    terms = reward_terms(
        EpisodeOutcome(
            val_score=0.86,
            static_val_score=0.80,
            params_initial=100,
            params_final=400,
            culled=2,
            rolled_back=1,
        ),
        config,
    )
    assert terms.gain == pytest.approx(6.0)
    assert terms.parameters == pytest.approx(2.0)  # two doublings
    assert terms.harm == 0.0
    assert terms.thrash == pytest.approx(0.75)
    assert terms.total == pytest.approx(3.25)


def test_losing_to_the_static_twin_counts_double() -> None:
    behind = EpisodeOutcome(0.75, 0.80, 100, 100)
    assert reward_terms(behind, CONFIG).harm == pytest.approx(5.0)
    assert episode_score(behind, CONFIG) == pytest.approx(-10.0)


def test_shaping_changes_when_credit_arrives_not_how_episodes_rank() -> None:
    """With gamma 1, potential-based shaping sums to -Phi(first state): the same for every policy."""
    config = RewardConfig(gamma=1.0)
    slow = [0.5, 0.5, 0.6, 0.8]
    fast = [0.5, 0.7, 0.8, 0.8]
    for curve in (slow, fast):
        rewards = step_rewards(curve, terminal=3.0, config=config)
        assert rewards.sum() == pytest.approx(3.0 - config.shaping * 100 * curve[0])
    # ... but the fast riser is paid earlier.
    assert step_rewards(fast, 3.0, config)[0] > step_rewards(slow, 3.0, config)[0]


def test_generalized_advantage_estimation_matches_its_definition() -> None:
    rewards = np.array([1.0, 0.0, 2.0])
    values = np.array([0.5, 0.5, 0.5])
    advantage, returns = advantages(rewards, values, gamma=0.9, lam=1.0)
    # lambda = 1: the discounted return minus the value.
    expected_returns = np.array([1.0 + 0.9 * 0.0 + 0.81 * 2.0, 0.0 + 0.9 * 2.0, 2.0])
    np.testing.assert_allclose(returns, expected_returns)
    np.testing.assert_allclose(advantage, expected_returns - values)


# Measured (20-epoch episodes of digits, stripes-6c and blobs-6c, seeds 0 and 1, on the
# main of 2026-12-07; validation accuracy of the delivered model, parameters):
# policy: [(run accuracy, static twin accuracy, initial parameters, final parameters, culls and rollbacks), ...]
MEASURED = {
    "heuristic-v1": [
        (0.9769, 0.8935, 244, 4228, 0),
        (0.9722, 0.9028, 244, 4228, 0),
        (0.9208, 0.7458, 192, 1024, 1),
        (0.9583, 0.9500, 192, 1024, 1),
        (0.5750, 0.5958, 86, 262, 0),
        (0.6000, 0.5583, 86, 842, 0),
    ],
    "germinate-all": [
        (0.9444, 0.8935, 244, 4891, 1),
        (0.9630, 0.9028, 244, 836, 3),
        (0.7458, 0.7458, 192, 192, 1),
        (0.9500, 0.9500, 192, 192, 1),
        (0.6083, 0.5958, 86, 1710, 0),
        (0.5750, 0.5583, 86, 378, 3),
    ],
    "never-germinate": [
        (0.8935, 0.8935, 244, 244, 0),
        (0.9028, 0.9028, 244, 244, 0),
        (0.7458, 0.7458, 192, 192, 0),
        (0.9500, 0.9500, 192, 192, 0),
        (0.5958, 0.5958, 86, 86, 0),
        (0.5583, 0.5583, 86, 86, 0),
    ],
}


def test_degenerate_policies_score_below_the_heuristic_on_measured_episodes() -> None:
    """tests/integration/simic/test_degenerate.py plays such episodes for real; these are numbers it saw."""
    means = {
        policy: float(
            np.mean([episode_score(EpisodeOutcome(a, s, p0, p1, culled=c), CONFIG) for a, s, p0, p1, c in rows])
        )
        for policy, rows in MEASURED.items()
    }
    assert means["never-germinate"] == 0.0
    assert means["heuristic-v1"] > means["never-germinate"]
    assert means["heuristic-v1"] > means["germinate-all"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="gamma"):
        RewardConfig(gamma=0.0)
    with pytest.raises(ValueError, match="parameter_cost"):
        RewardConfig(parameter_cost=-1.0)
