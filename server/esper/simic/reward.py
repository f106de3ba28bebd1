"""The reward a Tamiyo policy is trained and gated on, term by term.

An episode is one short Esper run; its static twin is the same host, data, seed and
epochs trained without seeds. Scores are validation scores (the test rows are never
looked at while training policies): the run's metric oriented so that higher is better,
as Tamiyo reads it, which for a classification run is its accuracy; points are score x 100
(accuracy points; for a metric where lower is better, such as bits per character, a
hundredth of a bit is a point).

  gain       validation score of the model the run delivers (its best validated state
             when the final one was worse, as Tolaria saves it) minus its static twin's, in
             points. Growth exists to beat the static host; this is the only term that pays.
  parameters minus `parameter_cost` points per doubling of the trainable parameters over
             the initial host (log2 of final / initial). Without it, germinating every seed
             with the largest kernel is free whenever it does not hurt; with it, capacity
             must pay for itself, and a log scale makes the price the same for every host size.
             Half a point per doubling, measured on curriculum episodes (tests/unit/simic/
             test_reward.py keeps the numbers): there heuristic-v1 scores 4.0, "germinate
             everything" 0.9 (it culls and rolls back more, and gains less) and "never
             germinate" 0. At 2 points per doubling, the earlier price, today's heuristic-v1
             scored below doing nothing (-0.5) although it gained 2 to 17 points of accuracy,
             and a policy trained on that reward learned not to grow: on the held-out suite it
             lost 1.2 to 11.6 points of test accuracy to the heuristic. Accuracy first,
             parameters as the tie-breaker, is what the benchmark asks.
  harm       minus `harm_weight` times the points lost to the static twin, when the run
             ends below it: losing to "do nothing" counts double. This is the term that
             makes a reckless policy worse than a timid one.
  thrash     minus `cull_cost` points per adaptation culled or rolled back: a cull wastes the
             epochs it trained and, repeated, is the "germinate everything, cull what breaks"
             loop the seeds' authors saw.
  shaping    at each boundary, gamma * Phi(next) - Phi(now) with Phi = `shaping` x validation
             score in points (Phi of the end state is 0). Potential-based (Ng, Harada and
             Russell, 1999): it changes no policy's ranking, only when the credit arrives, so a
             rise in the score after a good germination is felt at once rather than epochs later.

The episode's terminal reward (gain - parameters - harm - thrash) comes at its last boundary.
A policy that never germinates scores about 0 (it is its static twin); one that germinates
everything pays the parameter term on every seed and the harm term when blending hurts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RewardConfig:
    parameter_cost: float = 0.5
    harm_weight: float = 1.0
    cull_cost: float = 0.25
    shaping: float = 0.5
    gamma: float = 0.98

    def __post_init__(self) -> None:
        for name in ("parameter_cost", "harm_weight", "cull_cost", "shaping"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")


@dataclass(frozen=True)
class EpisodeOutcome:
    """What the reward reads of an episode and its static twin."""

    val_score: float
    static_val_score: float
    params_initial: int
    params_final: int
    culled: int = 0
    rolled_back: int = 0


@dataclass(frozen=True)
class RewardTerms:
    gain: float
    parameters: float
    harm: float
    thrash: float

    @property
    def total(self) -> float:
        return self.gain - self.parameters - self.harm - self.thrash


def reward_terms(outcome: EpisodeOutcome, config: RewardConfig) -> RewardTerms:
    gain = 100.0 * (outcome.val_score - outcome.static_val_score)
    growth = max(1.0, outcome.params_final / max(1, outcome.params_initial))
    return RewardTerms(
        gain=gain,
        parameters=config.parameter_cost * math.log2(growth),
        harm=config.harm_weight * max(0.0, -gain),
        thrash=config.cull_cost * (outcome.culled + outcome.rolled_back),
    )


def episode_score(outcome: EpisodeOutcome, config: RewardConfig) -> float:
    """The terminal reward: what the validation gate and the benchmarks compare."""
    return reward_terms(outcome, config).total


def step_rewards(scores: Sequence[float], terminal: float, config: RewardConfig) -> np.ndarray:
    """Reward of each boundary's transition: shaping toward the next boundary, the terminal at the last."""
    potentials = config.shaping * 100.0 * np.asarray(scores, dtype=np.float64)
    following = np.append(potentials[1:], 0.0)
    rewards = config.gamma * following - potentials
    if rewards.size:
        rewards[-1] += terminal
    return rewards


def advantages(rewards: np.ndarray, values: np.ndarray, *, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over one episode (the state after the last is terminal).

    Returns (advantages, returns) with returns = advantages + values, PPO's value targets.
    """
    advantage = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        next_value = values[t + 1] if t + 1 < len(values) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantage[t] = running
    return advantage, advantage + values
