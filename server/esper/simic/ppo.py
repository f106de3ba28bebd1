"""PPO on episodes: Tamiyo's policy improved by playing short Esper runs.

One iteration:
  1. The current network is written as a policy file; Simic's workers play
     `episodes_per_iteration` exploring episodes with it (tasks of the curriculum suite
     in turn, run seeds from a fixed set whose static twins are played once). Unless
     `explore_decisions`, only the germinations (when, where, which kernel) are sampled
     and trained; the seeds' lifecycle decisions stay the cloned, most likely ones:
     that is where growth is won or lost, and random culls and advances only add noise.
  2. Each episode is scored against its static twin (reward.py): shaping at every
     boundary, the terminal reward at the last; GAE turns rewards and the values the
     policy recorded into advantages and value targets.
  3. up to `epochs` passes of minibatch updates on the clipped objective (ratio of the new
     to the recorded probability of the whole masked action, clipped to 1 +- `clip`), a
     value loss, an entropy bonus, and an entropy floor: a penalty when the mean entropy of
     the decisions that had a choice falls below `entropy_floor`, which keeps the policy
     from collapsing onto one action (the failure the seeds' authors saw). The passes stop
     early once the approximate KL from the acting policy passes 1.5 x `target_kl`.
  4. Every `validate_every` iterations the greedy policy plays the validation suite; the
     best-scoring iterate is the result (model selection never looks at the held-out suite).
     The starting network (the behaviour clone) is scored before the first iteration, so
     PPO replaces it only with an iterate that validates better.
Boundaries where the policy fell back to heuristic-v1 train the value head only.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.simic.config import SimicConfig
from esper.simic.curriculum import suite
from esper.simic.episodes import EpisodeResult, EpisodeSpec, EpisodeWorkers
from esper.simic.gate import outcome, score_suite
from esper.simic.reward import RewardConfig, advantages, episode_score, step_rewards
from esper.simic.samples import Sample, batch, sample_from_transition
from esper.simic.twins import StaticTwins
from esper.tamiyo.acting import evaluate
from esper.tamiyo.artifact import write_policy
from esper.tamiyo.gnn import TamiyoNet

logger = logging.getLogger(__name__)

Observer = Callable[[dict[str, Any]], None]
# Exploring episodes must not have their decisions cut by a busy machine: a time-out
# fallback would replace the policy's action with the heuristic's.
EXPLORING = (("tamiyo.policy_timeout_ms", 10_000.0),)


@dataclass(frozen=True)
class PpoConfig:
    iterations: int = 20
    episodes_per_iteration: int = 8
    epochs: int = 6
    minibatch: int = 64
    learning_rate: float = 2e-3
    clip: float = 0.2
    target_kl: float = 0.03
    value_coef: float = 0.5
    entropy_coef: float = 0.003
    entropy_floor: float = 0.1
    entropy_floor_coef: float = 1.0
    explore_decisions: bool = False
    gamma: float = 0.98
    lam: float = 0.9
    max_grad_norm: float = 0.5
    run_seeds: int = 2
    suite: str = "train"
    validation_suite: str = "validation"
    validation_seeds: int = 1
    validate_every: int = 2
    seed: int = 0
    reward: RewardConfig = field(default_factory=RewardConfig)

    def __post_init__(self) -> None:
        for name in ("iterations", "episodes_per_iteration", "epochs", "minibatch", "run_seeds", "validate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class PpoResult:
    net: TamiyoNet
    metrics: dict[str, float]
    recipe: dict[str, Any]
    data: dict[str, Any]
    transitions: int
    history: list[dict[str, Any]]


@dataclass
class Step:
    sample: Sample
    advantage: float
    value_target: float
    learn_policy: bool


def train_ppo(
    start: TamiyoNet,
    ppo: PpoConfig,
    *,
    config: SimicConfig,
    observe: Observer | None = None,
    workers: EpisodeWorkers | None = None,
    baselines: dict[tuple[str, int], float] | None = None,
) -> PpoResult:
    """PPO from `start`; `observe` gets each iteration's figures (the training curve).

    `baselines` are scores to beat by (task, seed) (heuristic-v1's on the same run): each is
    taken off its episodes' terminal reward, a control variate that leaves the gradient's
    expectation alone and removes the spread between tasks from its variance.
    """
    training = config.training
    data_dir = Path(config.data_dir)
    tasks = list(suite(ppo.suite))
    validation = list(suite(ppo.validation_suite))
    twins = StaticTwins(data_dir / "static-twins", assets_dir=training.assets_dir, tasks_dir=str(data_dir))
    rng = random.Random(ppo.seed)
    torch.manual_seed(ppo.seed)
    net = TamiyoNet(start.architecture)
    net.load_state_dict(start.state_dict())
    optimizer = torch.optim.Adam(net.parameters(), lr=ppo.learning_rate)
    own_workers = workers is None
    pool = workers or EpisodeWorkers(training.workers, timeout_seconds=training.episode_timeout_seconds)
    history: list[dict[str, Any]] = []
    best_score, best_state, best_iteration = float("-inf"), _copy_state(net), 0
    total_transitions = 0
    episodes_played = 0
    try:
        with tempfile.TemporaryDirectory(prefix="simic-ppo-") as scratch:

            def validate(iteration: int) -> Any:
                path = str(write_policy(Path(scratch) / f"val{iteration}", _artifact(net, iteration)))
                return score_suite(
                    path,
                    validation,
                    list(range(ppo.validation_seeds)),
                    workers=pool,
                    twins=twins,
                    reward=ppo.reward,
                    assets_dir=training.assets_dir,
                    tasks_dir=str(data_dir),
                )

            pairs = [(task, seed) for task in tasks for seed in range(ppo.run_seeds)]
            static = twins.results(pairs, pool)
            # The starting network is scored too: an iterate replaces it only by validating better.
            start_score = validate(0)
            best_score = start_score.mean
            start_row = {
                "iteration": 0,
                "validation_score": start_score.mean,
                "validation_per_task": start_score.per_task,
            }
            history.append(start_row)
            logger.info("ppo start: %s", json.dumps(_short(start_row)))
            if observe is not None:
                observe(start_row)
            for iteration in range(1, ppo.iterations + 1):
                started = time.perf_counter()
                policy_path = str(write_policy(Path(scratch) / f"it{iteration}", _artifact(net, iteration)))
                chosen = [pairs[rng.randrange(len(pairs))] for _ in range(ppo.episodes_per_iteration)]
                specs = [
                    EpisodeSpec(
                        task,
                        seed,
                        policy_path,
                        explore=True,
                        explore_decisions=ppo.explore_decisions,
                        explore_seed=ppo.seed * 1_000_003 + iteration * 1009 + k,
                        assets_dir=training.assets_dir,
                        tasks_dir=str(data_dir),
                        overrides=EXPLORING,
                    )
                    for k, (task, seed) in enumerate(chosen)
                ]
                results = list(pool.play(specs))
                episodes_played += len(results)
                steps, scores, fallbacks = rollout(results, static, ppo, baselines or {})
                total_transitions += len(steps)
                figures = ppo_update(net, optimizer, steps, ppo, rng)
                row: dict[str, Any] = {
                    "iteration": iteration,
                    "reward": statistics.mean(scores) if scores else float("nan"),
                    "reward_vs_baseline": _versus(results, scores, baselines),
                    "episodes": len(scores),
                    "failed_episodes": sum(1 for r in results if r.error),
                    "fallbacks": fallbacks,
                    **figures,
                }
                if iteration % ppo.validate_every == 0 or iteration == ppo.iterations:
                    score = validate(iteration)
                    row["validation_score"] = score.mean
                    row["validation_per_task"] = score.per_task
                    if score.mean > best_score:
                        best_score, best_state, best_iteration = score.mean, _copy_state(net), iteration
                row["seconds"] = time.perf_counter() - started
                history.append(row)
                logger.info("ppo iteration %d: %s", iteration, json.dumps(_short(row)))
                if observe is not None:
                    observe(row)
    finally:
        if own_workers:
            pool.close()
    net.load_state_dict(best_state)
    net.eval()
    metrics = {
        "ppo_iterations": float(ppo.iterations),
        "ppo_best_iteration": float(best_iteration),
        "validation_score": best_score,
        "final_reward": float(history[-1]["reward"]) if history else float("nan"),
        "final_entropy": float(history[-1].get("entropy", float("nan"))) if history else float("nan"),
    }
    recipe = {k: v for k, v in asdict(ppo).items() if k != "reward"}
    recipe["reward"] = asdict(ppo.reward)
    data = {
        "suite": ppo.suite,
        "tasks": [task.name for task in tasks],
        "run_seeds": ppo.run_seeds,
        "episodes": episodes_played,
        "transitions": total_transitions,
    }
    return PpoResult(net, metrics, recipe, data, total_transitions, history)


def rollout(
    results: list[EpisodeResult],
    static: dict[tuple[str, int], EpisodeResult],
    ppo: PpoConfig,
    baselines: dict[tuple[str, int], float] | None = None,
) -> tuple[list[Step], list[float], int]:
    """Every episode's transitions with advantages and value targets; the episodes' scores; fallbacks."""
    steps: list[Step] = []
    scores: list[float] = []
    fallbacks = 0
    for result in results:
        if result.error:
            logger.warning("episode %s seed %d failed: %s", result.task, result.seed, result.error)
            continue
        transitions = result.parsed_transitions()
        if not transitions:
            continue
        terminal = episode_score(outcome(result, static[(result.task, result.seed)]), ppo.reward)
        scores.append(terminal)
        validation = [t.validation_score for t in transitions]
        baseline = (baselines or {}).get((result.task, result.seed), 0.0)
        rewards = step_rewards(validation, terminal - baseline, ppo.reward)
        values = np.array([t.value for t in transitions], dtype=np.float64)
        advantage, returns = advantages(rewards, values, gamma=ppo.gamma, lam=ppo.lam)
        for t, a, g in zip(transitions, advantage, returns, strict=True):
            fallbacks += int(t.fallback)
            try:
                sample = sample_from_transition(t)
            except ValueError as exc:
                logger.debug("transition skipped: %s", exc)
                continue
            steps.append(Step(sample, float(a), float(g), learn_policy=not t.fallback))
    return steps, scores, fallbacks


def ppo_update(
    net: TamiyoNet, optimizer: torch.optim.Optimizer, steps: list[Step], ppo: PpoConfig, rng: random.Random
) -> dict[str, float]:
    if not steps:
        return {}
    # The boundaries the trained part of the policy chose at: every choice, or only the
    # germinations when the lifecycle decisions are not explored. The others teach the value only.
    chooses = [
        s.learn_policy and (s.sample.has_choice if ppo.explore_decisions else s.sample.could_germinate) for s in steps
    ]
    adv = np.array([s.advantage for s in steps])
    chosen_adv = adv[np.array(chooses, dtype=bool)] if any(chooses) else adv
    adv = (adv - chosen_adv.mean()) / (chosen_adv.std() + 1e-8)
    net.train()
    figures: dict[str, list[float]] = {
        "policy_loss": [],
        "value_loss": [],
        "entropy": [],
        "approx_kl": [],
        "clip_fraction": [],
    }
    order = list(range(len(steps)))
    for _ in range(ppo.epochs):
        # Stop early once the policy moved too far from the one that acted: the clipped
        # objective only bounds each minibatch's step, not their sum over epochs.
        if figures["approx_kl"] and statistics.mean(figures["approx_kl"][-3:]) > 1.5 * ppo.target_kl:
            break
        rng.shuffle(order)
        for start in range(0, len(order), ppo.minibatch):
            chosen = order[start : start + ppo.minibatch]
            group = [steps[i] for i in chosen]
            data = batch([s.sample for s in group])
            scored = evaluate(net, data.tensors, data.seed_actions, data.kernel_pairs, decisions=ppo.explore_decisions)
            old = torch.tensor([s.sample.log_prob for s in group], dtype=torch.float32)
            advantage = torch.tensor(adv[chosen], dtype=torch.float32)
            target = torch.tensor([s.value_target for s in group], dtype=torch.float32)
            choice = torch.tensor([chooses[i] for i in chosen], dtype=torch.bool)
            ratio = torch.exp(scored.log_prob - old)
            clipped = torch.clamp(ratio, 1 - ppo.clip, 1 + ppo.clip)
            surrogate = torch.minimum(ratio * advantage, clipped * advantage)
            # Averages over the boundaries with a choice: the others would dilute the gradient.
            weight = choice.float()
            denominator = weight.sum().clamp(min=1.0)
            policy_loss = -(surrogate * weight).sum() / denominator
            value_loss = torch.nn.functional.smooth_l1_loss(scored.value, target)
            entropy = (scored.entropy * weight).sum() / denominator
            floor = torch.relu(ppo.entropy_floor - entropy)
            loss = (
                policy_loss + ppo.value_coef * value_loss - ppo.entropy_coef * entropy + ppo.entropy_floor_coef * floor
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), ppo.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                log_ratio = scored.log_prob - old
                figures["approx_kl"].append(float((((ratio - 1) - log_ratio) * weight).sum() / denominator))
                figures["clip_fraction"].append(
                    float((((ratio - 1).abs() > ppo.clip).float() * weight).sum() / denominator)
                )
            figures["policy_loss"].append(float(policy_loss.detach()))
            figures["value_loss"].append(float(value_loss.detach()))
            figures["entropy"].append(float(entropy.detach()))
    net.eval()
    return {name: statistics.mean(values) for name, values in figures.items() if values}


def _versus(results: list[EpisodeResult], scores: list[float], baselines: dict[tuple[str, int], float] | None) -> float:
    """Mean score above the baseline of each episode's (task, seed); NaN without baselines."""
    played = [r for r in results if not r.error and r.transitions]
    if not baselines or not played:
        return float("nan")
    return statistics.mean(
        score - baselines.get((r.task, r.seed), 0.0) for r, score in zip(played, scores, strict=True)
    )


def _copy_state(net: TamiyoNet) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in net.state_dict().items()}


def _artifact(net: TamiyoNet, iteration: int) -> Any:
    from esper.tamiyo.policies import policy_artifact

    return policy_artifact(net, f"ppo-it{iteration}", version=iteration)


def _short(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "validation_per_task"}
