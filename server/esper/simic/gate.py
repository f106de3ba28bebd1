"""The validation gate: a new policy is published only if it does not lose to the current one.

Both policies play the same episodes (every task of the validation suite, the same
seeds), greedily; each episode is scored with the reward against its static twin
(reward.episode_score). The candidate passes when its mean score is at least the
current policy's minus the tolerance.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from esper.simic.curriculum import Task
from esper.simic.episodes import EpisodeResult, EpisodeSpec, EpisodeWorkers
from esper.simic.reward import EpisodeOutcome, RewardConfig, episode_score
from esper.simic.twins import StaticTwins


@dataclass(frozen=True)
class SuiteScore:
    """A policy's episodes on a suite, scored: the mean, and the mean per task."""

    policy: str
    mean: float
    per_task: dict[str, float]
    episodes: list[EpisodeResult] = field(repr=False)
    failures: int = 0


@dataclass(frozen=True)
class GateResult:
    candidate: SuiteScore
    current: SuiteScore
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.candidate.failures == 0 and self.candidate.mean >= self.current.mean - self.tolerance

    def describe(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return (
            f"validation gate {verdict}: {self.candidate.policy} scored {self.candidate.mean:+.3f} vs "
            f"{self.current.policy} {self.current.mean:+.3f} (tolerance {self.tolerance}) over "
            f"{len(self.candidate.episodes)} episodes"
        )


def outcome(result: EpisodeResult, twin: EpisodeResult) -> EpisodeOutcome:
    """What the reward reads of an episode: the validation score of the model each run delivers."""
    return EpisodeOutcome(
        val_score=result.delivered,
        static_val_score=twin.delivered,
        params_initial=result.params_initial,
        params_final=result.params_final,
        culled=result.culled,
        rolled_back=result.rollbacks,
    )


def score_suite(
    policy: str,
    tasks: Sequence[Task],
    seeds: Sequence[int],
    *,
    workers: EpisodeWorkers,
    twins: StaticTwins,
    reward: RewardConfig,
    assets_dir: str = "",
    tasks_dir: str = "",
    label: str = "",
) -> SuiteScore:
    """Play `policy` greedily on every task and seed and score each episode against its twin."""
    pairs = [(task, seed) for task in tasks for seed in seeds]
    static = twins.results(pairs, workers)
    specs = [
        EpisodeSpec(task, seed, policy, record=False, assets_dir=assets_dir, tasks_dir=tasks_dir)
        for task, seed in pairs
    ]
    results = list(workers.play(specs))
    scores: dict[str, list[float]] = {}
    failures = 0
    for (task, seed), result in zip(pairs, results, strict=True):
        if result.error:
            failures += 1
            continue
        scores.setdefault(task.name, []).append(episode_score(outcome(result, static[(task.name, seed)]), reward))
    per_task = {name: statistics.mean(values) for name, values in scores.items()}
    mean = statistics.mean(per_task.values()) if per_task else float("-inf")
    return SuiteScore(policy=label or policy, mean=mean, per_task=per_task, episodes=results, failures=failures)


def validation_gate(
    candidate: str,
    current: str,
    tasks: Sequence[Task],
    seeds: Sequence[int],
    *,
    workers: EpisodeWorkers,
    twins: StaticTwins,
    reward: RewardConfig,
    tolerance: float,
    assets_dir: str = "",
    tasks_dir: str = "",
    labels: tuple[str, str] = ("", ""),
) -> GateResult:
    """`labels` name the candidate and the current policy in the result (default: what was played)."""
    common = {"workers": workers, "twins": twins, "reward": reward, "assets_dir": assets_dir, "tasks_dir": tasks_dir}
    return GateResult(
        candidate=score_suite(candidate, tasks, seeds, label=labels[0], **common),  # type: ignore[arg-type]
        current=score_suite(current, tasks, seeds, label=labels[1], **common),  # type: ignore[arg-type]
        tolerance=tolerance,
    )
