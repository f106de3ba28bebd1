"""Legal actions per seed: what the lifecycle and the budgets allow any policy."""

from __future__ import annotations

import numpy as np

from esper.leyline.v1 import kernel_pb2, lifecycle_pb2, policy_pb2
from esper.tamiyo import TamiyoConfig
from esper.tamiyo.context import decision_context
from esper.tamiyo.convert import observation_from_request
from esper.tamiyo.masks import ADVANCE, CULL, FOSSILIZE, GERMINATE, WAIT, actions_legal
from esper.tamiyo.observation import Observation
from esper.tamiyo.requests import check_step
from esper.tamiyo.state import Adaptation, RunState
from tests.support.tamiyo import PLATEAU, FakeKernels, SeedSimulator, kernel, make_controller, run_epochs

S = lifecycle_pb2


def _observation(sim: SeedSimulator, epoch: int, accuracy: float = 0.6) -> Observation:
    request = sim.request(epoch, accuracy)
    return observation_from_request(request, check_step(request))


def _adapting(stage: lifecycle_pb2.SeedStage, *, entered: int = 4, pre: float = 0.6, gain: float = 0.0) -> RunState:
    state = RunState(run_id="run-1", stepped=True)
    state.adaptations["net.3"] = Adaptation(
        seed_id="net.3",
        germination_command_id="c",
        kernel_id="k1",
        blueprint_id="bp",
        germination_epoch=2,
        pre_metric=pre,
        selected_for_tags=(),
        kernel_report=kernel_pb2.UrabraskValidationReport(),
        last_stage=stage,
        stage_entry_epoch=entered,
        eval_gain=gain,
    )
    return state


def _legal(mask: np.ndarray, row: int) -> set[int]:
    return {int(column) for column in np.flatnonzero(mask[row])}


def _mask(sim: SeedSimulator, state: RunState, epoch: int = 5, accuracy: float = 0.6, **config: object) -> np.ndarray:
    kernels = FakeKernels([kernel("k1")])
    context = decision_context(
        TamiyoConfig(**config),  # type: ignore[arg-type]
        state,
        _observation(sim, epoch, accuracy),
        kernels,
    )
    return context.mask


def test_germination_opens_after_the_warm_up_with_a_free_slot_and_a_kernel() -> None:
    sim = SeedSimulator()
    state = RunState(run_id="run-1", stepped=True)
    assert _legal(_mask(sim, state, epoch=1, warmup_epochs=2), 0) == {WAIT}
    assert _legal(_mask(sim, state, epoch=2, warmup_epochs=2), 0) == {WAIT, GERMINATE}
    state.embargo_until["net.1"] = 9
    embargoed = _mask(sim, state, epoch=2, warmup_epochs=2)
    assert (_legal(embargoed, 0), _legal(embargoed, 1)) == ({WAIT}, {WAIT, GERMINATE})
    state.conservative_mode = True
    assert not _mask(sim, state, epoch=2, warmup_epochs=2)[:, GERMINATE].any()


def test_no_germination_without_a_kernel_in_budget_or_time_to_finish() -> None:
    sim = SeedSimulator(final_epoch=8)
    state = RunState(run_id="run-1", stepped=True)
    assert _mask(sim, state, epoch=2, warmup_epochs=0, min_epochs_to_finish=6)[:, GERMINATE].all()
    assert not _mask(sim, state, epoch=3, warmup_epochs=0, min_epochs_to_finish=6)[:, GERMINATE].any()
    tiny = FakeKernels([kernel("k-huge", params=10**9)])
    context = decision_context(
        TamiyoConfig(warmup_epochs=0, max_seed_parameters=1000), state, _observation(sim, 2), tiny
    )
    assert not context.mask[:, GERMINATE].any()


def test_the_concurrency_budget_counts_the_seeds_ended_at_the_same_boundary() -> None:
    sim = SeedSimulator()
    sim.seeds["net.3"].stage = S.SEED_STAGE_TRAINING
    kernels = FakeKernels([kernel("k1")])
    observation = _observation(sim, 5)
    full = decision_context(
        TamiyoConfig(warmup_epochs=0, max_concurrent_seeds=1), _adapting(S.SEED_STAGE_TRAINING), observation, kernels
    )
    assert full.free_slots == 0 and full.mask[0, GERMINATE]
    germinate_only = np.array([GERMINATE, WAIT])
    assert "no concurrency slot" in actions_legal(full.mask, full.free_slots, germinate_only)
    assert actions_legal(full.mask, full.free_slots, np.array([GERMINATE, CULL])) == ""
    roomy = decision_context(
        TamiyoConfig(warmup_epochs=0, max_concurrent_seeds=2), _adapting(S.SEED_STAGE_TRAINING), observation, kernels
    )
    assert roomy.free_slots == 1
    assert actions_legal(roomy.mask, roomy.free_slots, germinate_only) == ""


def test_grafting_and_stabilizing_seeds_only_advance_when_ready() -> None:
    for stage in (S.SEED_STAGE_GRAFTING, S.SEED_STAGE_STABILIZATION):
        sim = SeedSimulator()
        sim.seeds["net.3"].stage = stage
        assert _legal(_mask(sim, _adapting(stage)), 1) == {WAIT}
        sim.seeds["net.3"].alpha, sim.seeds["net.3"].epochs_in_stage = 1.0, 5
        assert _legal(_mask(sim, _adapting(stage)), 1) == {WAIT, ADVANCE}  # CULL is illegal here


def test_training_seeds_can_be_cancelled_and_must_be_after_the_time_out() -> None:
    sim = SeedSimulator()
    sim.seeds["net.3"].stage = S.SEED_STAGE_TRAINING
    assert _legal(_mask(sim, _adapting(S.SEED_STAGE_TRAINING, entered=5)), 1) == {WAIT, CULL}
    sim.seeds["net.3"].epochs_in_stage = 2
    assert _legal(_mask(sim, _adapting(S.SEED_STAGE_TRAINING, entered=3), min_training_epochs=2), 1) == {
        WAIT,
        ADVANCE,
        CULL,
    }
    timed_out = _mask(sim, _adapting(S.SEED_STAGE_TRAINING, entered=0), stage_timeout_epochs=3)
    assert WAIT not in _legal(timed_out, 1)


def test_an_evaluated_seed_is_kept_only_on_a_positive_evaluation() -> None:
    sim = SeedSimulator(eval_gain=0.03)
    sim.seeds["net.3"].stage, sim.seeds["net.3"].epochs_in_stage, sim.seeds["net.3"].params = (
        S.SEED_STAGE_EVALUATING,
        1,
        100,
    )
    assert _legal(_mask(sim, _adapting(S.SEED_STAGE_EVALUATING)), 1) == {ADVANCE, CULL}
    sim.eval_gain = -0.01
    assert _legal(_mask(sim, _adapting(S.SEED_STAGE_EVALUATING)), 1) == {CULL}
    sim.eval_gain, sim.seeds["net.3"].params = 0.03, 0
    assert _legal(_mask(sim, _adapting(S.SEED_STAGE_EVALUATING)), 1) == {FOSSILIZE, CULL}


def test_fossilizing_needs_a_measured_improvement_and_harm_leaves_only_cull() -> None:
    sim = SeedSimulator()
    sim.seeds["net.3"].stage = S.SEED_STAGE_FINE_TUNING
    flat = _adapting(S.SEED_STAGE_FINE_TUNING, pre=0.6, gain=0.0)
    assert _legal(_mask(sim, flat, accuracy=0.6), 1) == {WAIT, CULL}
    assert _legal(_mask(sim, flat, accuracy=0.65), 1) == {WAIT, CULL, FOSSILIZE}
    assert _legal(_mask(sim, flat, accuracy=0.5), 1) == {CULL}
    excused = _adapting(S.SEED_STAGE_FINE_TUNING, pre=0.6, gain=0.05)
    assert _legal(_mask(sim, excused, accuracy=0.5), 1) == {WAIT, CULL, FOSSILIZE}


def test_non_finite_metrics_leave_every_seed_waiting() -> None:
    sim = SeedSimulator()
    sim.seeds["net.3"].stage = S.SEED_STAGE_FINE_TUNING
    mask = _mask(sim, _adapting(S.SEED_STAGE_FINE_TUNING), accuracy=float("nan"))
    assert mask[:, WAIT].all() and not mask[:, 1:].any()


class _Recorder:
    def __init__(self) -> None:
        self.transitions: list[policy_pb2.PolicyTransition] = []

    def record(self, transition: policy_pb2.PolicyTransition) -> None:
        self.transitions.append(transition)


def test_every_heuristic_decision_is_legal_under_the_masks() -> None:
    """Behaviour cloning learns the heuristic inside the masks: none of its choices may fall outside them."""
    from esper.tamiyo.graph_proto import graph_from_proto, tensor_from_proto
    from esper.tamiyo.transitions import seed_actions_from_proto

    recorder = _Recorder()
    controller = make_controller(FakeKernels([kernel("k1"), kernel("k2", params=900, latency_ms=0.1)]))
    controller.attach_transitions(recorder)
    sim = SeedSimulator(eval_gain=0.02)
    accuracies = [*PLATEAU, 0.6, 0.6, 0.61, 0.62, 0.62, 0.62, 0.62, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    responses = run_epochs(controller, sim, accuracies)
    assert sum(len(r.commands) for r in responses) >= 8
    for transition in recorder.transitions:
        mask = tensor_from_proto(transition.action_mask)
        actions = seed_actions_from_proto(transition.seed_actions)
        assert actions_legal(mask, transition.free_slots, actions) == "", transition
        graph = graph_from_proto(transition.observation)
        assert graph.seed_ids == ("net.1", "net.3")


def test_labels_read_a_germination_and_its_promotion_as_one_action() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    recorder = _Recorder()
    controller.attach_transitions(recorder)
    responses = run_epochs(controller, SeedSimulator(), PLATEAU)
    assert [c.seed_id for c in responses[3].commands] == ["net.1", "net.1"]  # germinate, then promote
    last = recorder.transitions[-1]
    assert list(last.seed_actions) == [policy_pb2.SEED_ACTION_GERMINATE, policy_pb2.SEED_ACTION_WAIT]
    assert last.kernel_id == "k1"
