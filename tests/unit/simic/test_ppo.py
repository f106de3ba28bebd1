"""The action distribution PPO trains is the one the policy acted with; an update moves it."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.leyline.v1 import policy_pb2
from esper.simic.ppo import PpoConfig, Step, ppo_update, rollout
from esper.simic.samples import batch, samples_from_transitions
from esper.tamiyo import TamiyoConfig, TamiyoController
from esper.tamiyo.acting import evaluate
from esper.tamiyo.artifact import write_policy
from esper.tamiyo.gnn import Architecture, TamiyoNet
from esper.tamiyo.policies import find_artifact, learned_policy, policy_artifact
from tests.support.episodes import episode_result
from tests.support.tamiyo import FakeKernels, SeedSimulator, descriptor, kernel, run_epochs
from tests.support.transitions import Recorder

LAYOUT = tuple(descriptor(f"net.{i}", i // 2, (32,) if i % 3 else (16,)) for i in range(6))
ACCURACIES = [0.30 + 0.02 * e for e in range(12)] + [0.55] * 10


def _explored(
    tmp_path: Path, net: TamiyoNet, seed: int, *, decisions: bool = True
) -> list[policy_pb2.PolicyTransition]:
    path = write_policy(tmp_path, policy_artifact(net, "gnn-ppo"))
    config = TamiyoConfig(warmup_epochs=1, max_concurrent_seeds=2, policy_timeout_ms=60_000.0)
    artifact = find_artifact(str(path))
    assert artifact is not None
    policy = learned_policy(artifact, config, sample=True, sample_decisions=decisions, seed=seed)
    recorder = Recorder()
    kernels = FakeKernels([kernel("k-a", params=60), kernel("k-b", params=600), kernel("k-d", params=90, dims=(16,))])
    controller = TamiyoController(None, config, kernels=kernels, transitions=recorder, policy=policy)
    run_epochs(controller, SeedSimulator(layout=LAYOUT, eval_gain=0.03), ACCURACIES)
    return recorder.transitions


@pytest.mark.parametrize("decisions", [True, False])
def test_evaluate_gives_back_the_log_probability_the_policy_acted_with(tmp_path: Path, decisions: bool) -> None:
    torch.manual_seed(0)
    net = TamiyoNet(Architecture(hidden=16))
    transitions = _explored(tmp_path, net, seed=3, decisions=decisions)
    samples, skipped = samples_from_transitions(transitions)
    assert not skipped and len(samples) == len(transitions)
    assert any(s.germinates for s in samples)
    data = batch(samples)
    scored = evaluate(net.eval(), data.tensors, data.seed_actions, data.kernel_pairs, decisions=decisions)
    np.testing.assert_allclose(scored.log_prob.detach().numpy(), [t.log_prob for t in transitions], atol=1e-4)
    np.testing.assert_allclose(scored.value.detach().numpy(), [t.value for t in transitions], atol=1e-4)
    assert (scored.entropy >= -1e-6).all()


def test_an_update_raises_the_probability_of_what_paid(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = TamiyoNet(Architecture(hidden=16))
    samples, _ = samples_from_transitions(_explored(tmp_path, net, seed=5))
    chosen = [s for s in samples if s.germinates]
    assert chosen
    steps = [Step(s, advantage=1.0 if s.germinates else -1.0, value_target=0.0, learn_policy=True) for s in samples]
    data = batch(chosen)
    before = evaluate(net, data.tensors, data.seed_actions, data.kernel_pairs).log_prob.detach()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    figures = ppo_update(
        net, optimizer, steps, PpoConfig(epochs=4, minibatch=16, explore_decisions=True), random.Random(0)
    )
    after = evaluate(net, data.tensors, data.seed_actions, data.kernel_pairs).log_prob.detach()
    assert all(np.isfinite(v) for v in figures.values())
    assert float(after.mean()) > float(before.mean())


def test_a_rollout_scores_each_episode_once_and_steps_every_boundary(tmp_path: Path) -> None:
    torch.manual_seed(2)
    transitions = _explored(tmp_path, TamiyoNet(Architecture(hidden=16)), seed=7)
    static = {("t", s): episode_result(seed=s, score=0.5) for s in (0, 1, 2)}
    played = [
        episode_result(seed=s, transitions=transitions, score=a, params_final=200)
        for s, a in enumerate((0.6, 0.7, 0.8))
    ]
    played[1] = dataclasses.replace(played[1], error="crashed")
    steps, scores, _ = rollout(played, static, PpoConfig())
    assert len(scores) == 2  # one terminal score per episode that played, not per boundary
    assert scores[1] > scores[0]
    assert len(steps) == 2 * len(transitions)


def test_ppo_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="iterations"):
        PpoConfig(iterations=0)
