"""The recipe that makes the shipped policy `gnn-v1` (what `make policy` runs).

  1. heuristic-v1 plays every task of the training curriculum with `run_seeds` seeds;
     its transitions are the behaviour-cloning data;
  2. behaviour cloning gives the starting network;
  3. PPO improves it on exploring episodes of the same curriculum (heuristic-v1's score on
     each task and seed as the baseline to beat), keeping the iterate with the best
     validation-suite score;
  4. the result is gated against heuristic-v1 on the validation suite and written,
     weights and card, with the training curve (reward, entropy, validation score per
     iteration) as JSON lines and a plot.
Everything is seeded; on the same machine the same seed gives the same policy.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.simic.cloning import clone
from esper.simic.config import SimicConfig, TrainingConfig
from esper.simic.curriculum import suite
from esper.simic.episodes import EpisodeSpec, EpisodeWorkers
from esper.simic.gate import outcome, validation_gate
from esper.simic.ppo import PpoConfig, train_ppo
from esper.simic.reward import RewardConfig, episode_score
from esper.simic.samples import samples_from_transitions
from esper.simic.twins import StaticTwins
from esper.tamiyo.artifact import write_policy
from esper.tamiyo.gnn import Architecture
from esper.tamiyo.policies import policy_artifact

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GnnRecipe:
    policy_id: str = "gnn-v1"
    version: int = 1
    run_seeds: int = 2
    bc_steps: int = 400
    bc_batch: int = 64
    bc_learning_rate: float = 3e-3
    hidden: int = 32
    layers: int = 2
    gate_suite: str = "validation"
    gate_seeds: int = 2
    workers: int = 2
    seed: int = 0
    ppo: PpoConfig = field(default_factory=PpoConfig)


def make_gnn(recipe: GnnRecipe, *, out_dir: Path, work_dir: Path, assets_dir: str = "") -> dict[str, Any]:
    """Train the policy into `out_dir` (`<id>.safetensors`, `<id>.json`); returns the card."""
    started = time.perf_counter()
    training = TrainingConfig(workers=recipe.workers, assets_dir=assets_dir, seed=recipe.seed)
    config = SimicConfig(data_dir=str(work_dir), training=training)
    curve_path = work_dir / "training-curve.jsonl"
    curve_path.unlink(missing_ok=True)
    tasks = list(suite(recipe.ppo.suite))
    with EpisodeWorkers(recipe.workers, timeout_seconds=training.episode_timeout_seconds) as workers:
        specs = [
            EpisodeSpec(task, seed, "heuristic-v1", assets_dir=assets_dir, tasks_dir=str(work_dir))
            for task in tasks
            for seed in range(recipe.run_seeds)
        ]
        heuristic = list(workers.play(specs))
        failed = [r for r in heuristic if r.error]
        if failed:
            raise RuntimeError(f"{len(failed)} heuristic episodes failed, first: {failed[0].error}")
        transitions = [t for result in heuristic for t in result.parsed_transitions()]
        samples, skipped = samples_from_transitions(transitions)
        logger.info("behaviour cloning on %d samples (%s skipped)", len(samples), dict(skipped))
        architecture = Architecture(hidden=recipe.hidden, layers=recipe.layers)
        cloned = clone(
            samples,
            architecture=architecture,
            steps=recipe.bc_steps,
            batch_size=recipe.bc_batch,
            learning_rate=recipe.bc_learning_rate,
            seed=recipe.seed,
        )

        def observe(row: dict[str, Any]) -> None:
            with curve_path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(row, sort_keys=True) + "\n")

        twins = StaticTwins(work_dir / "static-twins", assets_dir=assets_dir, tasks_dir=str(work_dir))
        static = twins.results([(task, seed) for task in tasks for seed in range(recipe.ppo.run_seeds)], workers)
        baselines = {
            (r.task, r.seed): episode_score(outcome(r, static[(r.task, r.seed)]), recipe.ppo.reward)
            for r in heuristic
            if (r.task, r.seed) in static
        }
        result = train_ppo(cloned.net, recipe.ppo, config=config, observe=observe, workers=workers, baselines=baselines)
        candidate = policy_artifact(result.net, recipe.policy_id, version=recipe.version)
        candidate_path = str(write_policy(work_dir / "candidate", candidate))
        gate = validation_gate(
            candidate_path,
            "heuristic-v1",
            list(suite(recipe.gate_suite)),
            list(range(recipe.gate_seeds)),
            workers=workers,
            twins=twins,
            reward=recipe.ppo.reward,
            tolerance=0.0,
            assets_dir=assets_dir,
            tasks_dir=str(work_dir),
            labels=(recipe.policy_id, "heuristic-v1"),
        )
    minutes = (time.perf_counter() - started) / 60.0
    artifact = policy_artifact(
        result.net,
        recipe.policy_id,
        version=recipe.version,
        recipe={
            "algorithm": "behaviour cloning, then ppo",
            "behaviour_cloning": {
                "steps": recipe.bc_steps,
                "batch_size": recipe.bc_batch,
                "learning_rate": recipe.bc_learning_rate,
            },
            "ppo": result.recipe,
            "seed": recipe.seed,
            "workers": recipe.workers,
            "minutes": round(minutes, 1),
            "command": "make policy",
        },
        data={
            "behaviour_cloning": {
                "episodes": len(heuristic),
                "transitions": len(transitions),
                "samples": len(samples),
                "skipped": dict(skipped),
                "tasks": [task.name for task in tasks],
                "run_seeds": recipe.run_seeds,
            },
            "ppo": result.data,
        },
        validation={
            **cloned.metrics,
            **result.metrics,
            "gate": gate.describe(),
            "gate_passed": gate.passed,
            "validation_suite": {
                "candidate": gate.candidate.per_task,
                "heuristic-v1": gate.current.per_task,
            },
            "reward": _reward_terms(recipe.ppo.reward),
        },
    )
    write_policy(out_dir, artifact)
    logger.info("%s in %.1f minutes: %s", recipe.policy_id, minutes, gate.describe())
    return artifact.card


def _reward_terms(reward: RewardConfig) -> dict[str, float]:
    from dataclasses import asdict

    return asdict(reward)


def plot_curve(curve_path: Path, png: Path) -> None:
    """reward, entropy and validation-suite score per PPO iteration, one panel each."""
    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in curve_path.read_text().splitlines() if line.strip()]
    figure = Figure(figsize=(13, 3.8), dpi=100, layout="constrained")
    panels = figure.subplots(1, 3)
    played = [row for row in rows if "reward" in row]  # iteration 0 is the starting network, validated only
    iterations = [row["iteration"] for row in played]
    panels[0].plot(iterations, [row["reward"] for row in played], marker="o", label="score vs static twin")
    panels[0].plot(
        iterations, [row.get("reward_vs_baseline") for row in played], marker="s", label="minus heuristic-v1's score"
    )
    panels[0].axhline(0.0, color="grey", linewidth=0.8)
    panels[0].legend(fontsize=8)
    panels[0].set_title("exploring episodes' reward (points)")
    panels[1].plot(iterations, [row.get("entropy") for row in played], marker="o", color="tab:orange")
    panels[1].set_title("policy entropy (decisions with a choice)")
    validated = [row for row in rows if "validation_score" in row]
    panels[2].plot(
        [row["iteration"] for row in validated],
        [row["validation_score"] for row in validated],
        marker="o",
        color="tab:green",
    )
    panels[2].set_title("validation-suite score (greedy)")
    for panel in panels:
        panel.set_xlabel("PPO iteration")
        panel.grid(alpha=0.3)
    figure.savefig(png)
