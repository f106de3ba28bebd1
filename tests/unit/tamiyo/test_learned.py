"""A learned policy behind the veto, its fallback to heuristic-v1, and policies as artifacts."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.errors import FailedPrecondition, InvalidArgument, NotFound
from esper.leyline.v1 import control_pb2, lifecycle_pb2, policy_pb2, tamiyo_pb2
from esper.tamiyo import TamiyoConfig, TamiyoController
from esper.tamiyo.acting import Action
from esper.tamiyo.artifact import PolicyArtifact, read_policy, write_policy
from esper.tamiyo.context import decision_context
from esper.tamiyo.convert import observation_from_request
from esper.tamiyo.gnn import Architecture, TamiyoNet
from esper.tamiyo.learned import ForbiddenDecision, veto
from esper.tamiyo.masks import CULL, GERMINATE, WAIT, actions_legal
from esper.tamiyo.policies import artifact_from_update, policy_artifact
from esper.tamiyo.requests import check_step
from esper.tamiyo.state import RunState
from esper.tamiyo.transitions import seed_actions_from_proto
from tests.support.tamiyo import (
    PLATEAU,
    FakeKernels,
    SeedSimulator,
    commands_by_epoch,
    descriptor,
    kernel,
    run_epochs,
)

LAYOUT = tuple(descriptor(f"net.{i}", i // 2, (32,) if i % 3 else (16,)) for i in range(6))
ACCURACIES = [0.30 + 0.02 * e for e in range(12)] + [0.55] * 14


def _kernels() -> FakeKernels:
    return FakeKernels(
        [
            kernel("k-a", params=60),
            kernel("k-b", params=600, latency_ms=0.2),
            kernel("k-c", params=6000, tags=()),
            kernel("k-d", params=90, dims=(16,)),
        ]
    )


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[policy_pb2.PolicyTransition] = []

    def record(self, transition: policy_pb2.PolicyTransition) -> None:
        self.transitions.append(transition)


def _write(tmp_path: Path, net: TamiyoNet, policy_id: str = "gnn-test") -> str:
    return str(write_policy(tmp_path, policy_artifact(net, policy_id, version=3)))


def _controller(policy: str, recorder: Recorder | None = None, **config: object) -> TamiyoController:
    # A busy machine must not turn these tests into time-out tests: only the time-out test sets a tight budget.
    config = {"policy_timeout_ms": 60_000.0, **config}
    settings = TamiyoConfig(policy_id=policy, warmup_epochs=1, max_concurrent_seeds=2, **config)  # type: ignore[arg-type]
    return TamiyoController(None, settings, kernels=_kernels(), transitions=recorder)


def _exploring(tmp_path: Path, seed: int) -> tuple[TamiyoController, Recorder]:
    torch.manual_seed(seed)
    recorder = Recorder()
    controller = _controller(_write(tmp_path, TamiyoNet(Architecture(hidden=16))), recorder)
    controller._policy._sample = True  # type: ignore[attr-defined]  # exploration, as Simic's episodes run it
    return controller, recorder


def test_a_learned_policy_only_ever_issues_legal_commands(tmp_path: Path) -> None:
    # The simulator applies each command with Kasmina's lifecycle table and fails on an illegal one.
    controller, recorder = _exploring(tmp_path, seed=0)
    responses = run_epochs(controller, SeedSimulator(layout=LAYOUT, eval_gain=0.03), ACCURACIES)
    labels = [label for step in commands_by_epoch(responses) for label in step]
    assert any("REQUEST_GERMINATION" in label for label in labels)
    assert any(":ADVANCE:" in label for label in labels)
    status = controller.get_status(tamiyo_pb2.GetStatusRequest())
    assert (status.policy_id, status.policy_version, status.policy_fallbacks) == ("gnn-test", 3, 0)
    assert len(recorder.transitions) == len(ACCURACIES)
    for transition in recorder.transitions:
        mask = _mask(transition)
        actions = seed_actions_from_proto(transition.seed_actions)
        assert actions_legal(mask, transition.free_slots, actions) == ""
        assert transition.policy_id == "gnn-test" and not transition.fallback
        assert transition.log_prob <= 0.0
    assert any(t.log_prob < 0.0 for t in recorder.transitions)
    # Every boundary says what the policy chose, a wait included (as heuristic-v1 does).
    for response in responses:
        germinated = any(c.command_type == lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION for c in response.commands)
        waited = [d.reason for d in response.decisions if not d.seed_id and "no germination this boundary" in d.reason]
        assert germinated or waited, response.decisions


def _mask(transition: policy_pb2.PolicyTransition) -> np.ndarray:
    from esper.tamiyo.graph_proto import tensor_from_proto

    return tensor_from_proto(transition.action_mask)


def test_an_exploring_run_repeats_with_its_seed(tmp_path: Path) -> None:
    first, _ = _exploring(tmp_path / "a", seed=1)
    second, _ = _exploring(tmp_path / "b", seed=1)
    one = commands_by_epoch(run_epochs(first, SeedSimulator(layout=LAYOUT), ACCURACIES))
    two = commands_by_epoch(run_epochs(second, SeedSimulator(layout=LAYOUT), ACCURACIES))
    assert one == two


def test_non_finite_output_hands_the_boundary_to_the_heuristic(tmp_path: Path) -> None:
    net = TamiyoNet(Architecture(hidden=8))
    with torch.no_grad():
        net.seed_head[2].bias.fill_(float("nan"))
    recorder = Recorder()
    learned = _controller(_write(tmp_path, net), recorder)
    heuristic = _controller("heuristic-v1")
    accuracies = [*PLATEAU, 0.6, 0.6, 0.6]
    got = run_epochs(learned, SeedSimulator(), accuracies)
    want = run_epochs(heuristic, SeedSimulator(), accuracies)
    assert commands_by_epoch(got) == commands_by_epoch(want)
    assert any(commands_by_epoch(got))
    status = learned.get_status(tamiyo_pb2.GetStatusRequest())
    assert status.policy_fallbacks == len(accuracies)
    reasons = [d.reason for d in got[0].decisions if not d.seed_id]
    assert any("policy gnn-test failed (PolicyOutputError" in reason for reason in reasons)
    assert all(t.fallback and t.policy_id == "gnn-test" for t in recorder.transitions)
    assert "PolicyOutputError" in recorder.transitions[0].fallback_reason


def test_a_policy_slower_than_its_budget_is_overruled(tmp_path: Path) -> None:
    learned = _controller(_write(tmp_path, TamiyoNet(Architecture(hidden=8))), policy_timeout_ms=1e-6)
    response = run_epochs(learned, SeedSimulator(), [0.5])[0]
    assert any("PolicyTimeout" in d.reason for d in response.decisions)
    assert learned.get_status(tamiyo_pb2.GetStatusRequest()).policy_fallbacks == 1


def test_the_veto_refuses_what_the_mask_or_the_budget_forbids() -> None:
    sim = SeedSimulator()
    request = sim.request(3, 0.6)
    observation = observation_from_request(request, check_step(request))
    context = decision_context(
        TamiyoConfig(warmup_epochs=0), RunState(run_id="run-1", stepped=True), observation, _kernels()
    )

    def action(seed_actions: list[int], kernel_row: int = -1) -> Action:
        return Action(np.array(seed_actions), kernel_row, 0.0, 0.0, 0.0, np.ones(2), 1.0)

    veto(action([GERMINATE, WAIT], kernel_row=0), context)
    with pytest.raises(ForbiddenDecision, match="not legal"):
        veto(action([CULL, WAIT]), context)
    with pytest.raises(ForbiddenDecision, match="2 germinations"):
        veto(action([GERMINATE, GERMINATE], kernel_row=0), context)
    with pytest.raises(ForbiddenDecision, match="without a kernel"):
        veto(action([GERMINATE, WAIT]), context)


def test_load_policy_takes_ids_only_and_unknown_ones_are_not_found(tmp_path: Path) -> None:
    path = _write(tmp_path, TamiyoNet(Architecture(hidden=8)), "gnn-path")
    controller = _controller("heuristic-v1")
    # A Tamiyo server never opens a file a caller names; files are for the run's own config.
    with pytest.raises(InvalidArgument) as raised:
        controller.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id=path))
    assert [v.field for v in raised.value.violations] == ["policy_id"]
    with pytest.raises(NotFound) as missing:
        controller.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id="simic-99"))
    assert missing.value.reason == "POLICY_NOT_FOUND"
    followed = controller.load_policy(tamiyo_pb2.LoadPolicyRequest(follow_updates=True))
    assert (followed.policy_id, followed.pinned) == ("heuristic-v1", False)
    with pytest.raises(InvalidArgument):
        _controller(str(tmp_path / "missing.safetensors"))


def test_an_artifact_round_trips_and_its_card_says_what_it_is(tmp_path: Path) -> None:
    net = TamiyoNet(Architecture(hidden=8, conv="gatv2"))
    artifact = read_policy(Path(_write(tmp_path, net, "gnn-card")))
    card = artifact.card
    assert (card["kind"], card["policy_id"], card["version"]) == ("learned", "gnn-card", 3)
    assert card["architecture"]["conv"] == "gatv2"
    assert card["feature_schema_version"] == 1
    assert card["sha256"] == artifact.sha256
    controller = _controller(str(tmp_path / "gnn-card.safetensors"))
    assert controller.policy_id == "gnn-card"


def _tampered(tmp_path: Path, weights: bytes, **card: object) -> str:
    artifact = policy_artifact(TamiyoNet(Architecture(hidden=8)), "gnn-bad")
    spoiled = PolicyArtifact("gnn-bad", 1, weights, {**artifact.card, **card})
    return str(write_policy(tmp_path, spoiled))


class _Payload:
    """Unpickling it would create `marker`: proof that loading a policy ran code a file named."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_weights_are_loaded_only_when_they_are_checked_safetensors(tmp_path: Path) -> None:
    good = policy_artifact(TamiyoNet(Architecture(hidden=8)), "gnn-bad").weights
    with pytest.raises(FailedPrecondition) as raised:
        _controller(_tampered(tmp_path, good + b"\x00"))
    assert raised.value.reason == "POLICY_CHECKSUM_MISMATCH"
    with pytest.raises(FailedPrecondition) as raised:
        _controller(_tampered(tmp_path, good, sha256=""))
    assert raised.value.reason == "POLICY_CHECKSUM_MISMATCH"
    marker = tmp_path / "unpickled"
    buffer = io.BytesIO()
    torch.save({"x": _Payload(marker)}, buffer, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    pickled = buffer.getvalue()
    with pytest.raises(FailedPrecondition) as raised:
        _controller(_tampered(tmp_path, pickled, sha256=hashlib.sha256(pickled).hexdigest()))
    assert raised.value.reason == "POLICY_UNREADABLE"
    assert "pickle" in raised.value.message
    assert not marker.exists()
    garbage = b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"{" * 24
    with pytest.raises(FailedPrecondition) as raised:
        _controller(_tampered(tmp_path, garbage, sha256=hashlib.sha256(garbage).hexdigest()))
    assert raised.value.reason == "POLICY_UNREADABLE"
    with pytest.raises(FailedPrecondition) as raised:
        _controller(_tampered(tmp_path, good, feature_schema_version=99))
    assert raised.value.reason == "POLICY_SCHEMA_MISMATCH"


@pytest.mark.parametrize("card_json", ["[1, 2]", "{not json", "{" + " " * (1024 * 1024) + "}"])
def test_a_policy_simic_serves_with_a_malformed_card_is_refused(card_json: str) -> None:
    artifact = policy_artifact(TamiyoNet(Architecture(hidden=8)), "gnn-card")
    update = control_pb2.PolicyUpdate(policy_id="gnn-card", version=1, sha256=artifact.sha256, card_json=card_json)
    with pytest.raises(FailedPrecondition) as raised:
        artifact_from_update(update, artifact.weights)
    assert raised.value.reason == "POLICY_UNREADABLE"
