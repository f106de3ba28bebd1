"""The reward, term by term, and why the degenerate policies lose under it."""

from __future__ import annotations

import numpy as np
import pytest

from esper.simic.reward import EpisodeOutcome, RewardConfig, advantages, episode_score, reward_terms, step_rewards

CONFIG = RewardConfig()


def test_each_term_counts_what_it_says() -> None:
    terms = reward_terms(
        EpisodeOutcome(
            best_val_accuracy=0.86,
            static_best_val_accuracy=0.80,
            params_initial=100,
            params_final=400,
            culled=2,
            rolled_back=1,
        ),
        CONFIG,
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


def test_degenerate_outcomes_rank_below_a_growth_that_pays() -> None:
    """Outcomes of the shape the episodes produce (tests/integration/simic measures them for real)."""
    static = 0.80
    heuristic = EpisodeOutcome(0.86, static, 250, 900)  # +6 points for 1.85 doublings
    never = EpisodeOutcome(static, static, 250, 250)  # it is its static twin
    everything = EpisodeOutcome(0.83, static, 250, 6000, culled=1)  # some gain, 4.6 doublings, a cull
    scores = {name: episode_score(o, CONFIG) for name, o in [("h", heuristic), ("n", never), ("e", everything)]}
    assert scores["h"] > scores["n"] == 0.0
    assert scores["h"] > scores["e"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="gamma"):
        RewardConfig(gamma=0.0)
    with pytest.raises(ValueError, match="parameter_cost"):
        RewardConfig(parameter_cost=-1.0)
