"""Training recipes: from a TrainPolicy request to a policy artifact with its card.

behaviour cloning  heuristic-v1's recorded decisions (its own runs, and the boundaries
                   where a learned policy fell back to it) from the replay store;
PPO                episodes played by Simic's workers (simic.ppo), starting from the
                   base policy, or from behaviour cloning on the replay store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esper.leyline.v1 import simic_pb2
from esper.simic.cloning import clone
from esper.simic.config import SimicConfig
from esper.simic.experience import TransitionStore
from esper.simic.samples import Sample, samples_from_transitions
from esper.tamiyo.artifact import PolicyArtifact
from esper.tamiyo.gnn import Architecture, TamiyoNet

HEURISTIC = "heuristic-v1"


@dataclass
class RecipeOutcome:
    artifact: PolicyArtifact
    metrics: dict[str, float]
    transitions: int
    gate_card: dict[str, Any] = field(default_factory=dict)


def heuristic_samples(experience: TransitionStore, limit: int) -> tuple[list[Sample], int, dict[str, int]]:
    """heuristic-v1's learnable decisions in the store: (samples, transitions read, skipped by reason)."""
    transitions = [t for t in experience.load(limit=limit) if t.policy_id == HEURISTIC or t.fallback]
    samples, skipped = samples_from_transitions(transitions)
    return samples, len(transitions), dict(skipped)


def train_policy(
    request: simic_pb2.TrainPolicyRequest,
    *,
    policy_id: str,
    version: int,
    experience: TransitionStore,
    base: PolicyArtifact | None,
    config: SimicConfig,
) -> RecipeOutcome:
    from esper.simic.training import JobFailed

    training = config.training
    algorithm = request.algorithm or simic_pb2.TRAINING_ALGORITHM_BEHAVIOUR_CLONING
    base_net = _net(base) if base is not None else None
    architecture = base_net.architecture if base_net is not None else Architecture(training.hidden, training.layers)
    if algorithm == simic_pb2.TRAINING_ALGORITHM_PPO:
        from esper.simic.ppo import PpoConfig, train_ppo

        ppo = PpoConfig(iterations=request.iterations or PpoConfig().iterations, seed=training.seed)
        start = base_net
        if start is None:
            samples, _, _ = heuristic_samples(experience, training.max_transitions)
            if len(samples) < training.min_transitions:
                raise JobFailed(_too_few(len(samples), training.min_transitions))
            start = clone(
                samples,
                architecture=architecture,
                steps=request.max_steps or training.bc_steps,
                batch_size=training.batch_size,
                learning_rate=training.learning_rate,
                seed=training.seed,
            ).net
        result = train_ppo(start, ppo, config=config)
        artifact = _artifact(
            result.net,
            policy_id,
            version,
            recipe={"algorithm": "ppo", **result.recipe, "base_policy_id": base.policy_id if base else ""},
            data=result.data,
            validation={},
            parent=base.policy_id if base else "",
        )
        return RecipeOutcome(artifact, result.metrics, result.transitions)
    samples, read, skipped = heuristic_samples(experience, training.max_transitions)
    if len(samples) < training.min_transitions:
        raise JobFailed(_too_few(len(samples), training.min_transitions))
    steps = request.max_steps or training.bc_steps
    cloned = clone(
        samples,
        architecture=architecture,
        steps=steps,
        batch_size=training.batch_size,
        learning_rate=training.learning_rate,
        seed=training.seed,
        net=base_net,
    )
    recipe = {
        "algorithm": "behaviour_cloning",
        "steps": steps,
        "batch_size": training.batch_size,
        "learning_rate": training.learning_rate,
        "seed": training.seed,
        "base_policy_id": base.policy_id if base else "",
    }
    data = {"source": "simic replay store", "transitions_read": read, "samples": len(samples), "skipped": skipped}
    artifact = _artifact(
        cloned.net,
        policy_id,
        version,
        recipe=recipe,
        data=data,
        validation=cloned.metrics,
        parent=base.policy_id if base else "",
    )
    return RecipeOutcome(artifact, cloned.metrics, read)


def _too_few(found: int, needed: int) -> str:
    return (
        f"only {found} learnable heuristic-v1 transitions in the replay store (need {needed}): "
        "record runs with heuristic-v1 first (embedded or through the mesh)"
    )


def _net(artifact: PolicyArtifact) -> TamiyoNet:
    from esper.tamiyo.config import TamiyoConfig
    from esper.tamiyo.policies import learned_policy

    return learned_policy(artifact, TamiyoConfig()).net


def _artifact(
    net: TamiyoNet,
    policy_id: str,
    version: int,
    *,
    recipe: dict[str, Any],
    data: dict[str, Any],
    validation: dict[str, Any],
    parent: str,
) -> PolicyArtifact:
    from esper.tamiyo.policies import policy_artifact

    return policy_artifact(
        net, policy_id, version=version, recipe=recipe, data=data, validation=validation, parent_policy_id=parent
    )
