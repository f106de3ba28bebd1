"""Determinism, controller state export/restore, idempotent steps and status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from esper.errors import FailedPrecondition, NotFound
from esper.leyline.v1 import kernel_pb2, lifecycle_pb2, tamiyo_pb2
from esper.tamiyo.convert import state_from_proto, state_to_proto
from esper.tamiyo.issued import command_id, report_id
from tests.support.tamiyo import (
    PLATEAU,
    RUN,
    FakeKernels,
    SeedSimulator,
    kernel,
    make_controller,
    run_epochs,
)

S = lifecycle_pb2
# Two seeds, two concurrent slots, one adaptation culled and others going on: plenty of state.
ACCURACIES = [*PLATEAU, 0.60, 0.60, 0.61, 0.60, 0.60, 0.60, 0.63, 0.64, 0.64, 0.64, 0.64, 0.66]


def _kernels() -> FakeKernels:
    return FakeKernels([kernel("a", latency_ms=0.2), kernel("b", latency_ms=0.4, params=0)])


def _sim() -> SeedSimulator:
    sim = SeedSimulator(kernel_params={"b": 0}, eval_gain=-0.01)
    sim.seeds["net.3"].dead = 0.4
    return sim


def _flip_gain(epoch: int, sim: SeedSimulator) -> None:
    sim.eval_gain = 0.03 if epoch >= 10 else -0.01


def _run(accuracies: list[float] = ACCURACIES) -> list[tamiyo_pb2.StepResponse]:
    controller = make_controller(_kernels(), max_concurrent_seeds=2)
    return run_epochs(controller, _sim(), accuracies, before_step=_flip_gain)


def _bytes(responses: list[tamiyo_pb2.StepResponse]) -> list[bytes]:
    return [r.SerializeToString(deterministic=True) for r in responses]


def test_the_same_inputs_give_identical_responses() -> None:
    first, second = _run(), _run()
    assert _bytes(first) == _bytes(second)
    outcomes = [r.outcome for response in first for r in response.field_reports]
    assert S.ADAPTATION_OUTCOME_CULLED in outcomes and S.ADAPTATION_OUTCOME_FOSSILIZED in outcomes


def test_ids_are_deterministic_and_distinct() -> None:
    a = command_id(RUN, 3, "net.1", S.COMMAND_TYPE_ADVANCE, S.SEED_STAGE_LOADING)
    assert a == command_id(RUN, 3, "net.1", S.COMMAND_TYPE_ADVANCE, S.SEED_STAGE_LOADING)
    assert a != command_id(RUN, 3, "net.1", S.COMMAND_TYPE_ADVANCE, S.SEED_STAGE_GRAFTING)
    assert a != command_id(RUN, 4, "net.1", S.COMMAND_TYPE_ADVANCE, S.SEED_STAGE_LOADING)
    assert a != command_id("run-2", 3, "net.1", S.COMMAND_TYPE_ADVANCE, S.SEED_STAGE_LOADING)
    assert report_id(RUN, "net.1", a) != report_id(RUN, "net.3", a)
    # Each adaptation of a seed has its own report: ids differ by germination command.
    again = command_id(RUN, 9, "net.1", S.COMMAND_TYPE_REQUEST_GERMINATION)
    assert report_id(RUN, "net.1", a) != report_id(RUN, "net.1", again)
    assert report_id(RUN, "net.1", a) == report_id(RUN, "net.1", a)


@dataclass(frozen=True)
class Scenario:
    """A scripted run: controller settings, simulator, accuracies, per-epoch script."""

    config: dict[str, object]
    make_sim: Callable[[], SeedSimulator]
    accuracies: list[float]
    before_step: Callable[[int, SeedSimulator], None] | None


def _always_failing_sim() -> SeedSimulator:
    return SeedSimulator(kernel_params={"b": 0}, eval_gain=-0.01)


SCENARIOS = {
    # A cull, a fossilization and a re-germination.
    "mixed": Scenario({"max_concurrent_seeds": 2}, _sim, ACCURACIES, _flip_gain),
    # Every adaptation fails: conservative mode goes on, off after calm epochs, and on again.
    "troubled": Scenario(
        {"max_concurrent_seeds": 2, "embargo_epochs": 2, "calm_epochs": 3, "trouble_window_epochs": 6},
        _always_failing_sim,
        [0.5, *([0.6] * 21)],
        None,
    ),
}
CUTS = [(name, cut) for name, scenario in SCENARIOS.items() for cut in range(1, len(scenario.accuracies))]


def _play(scenario: Scenario) -> list[tamiyo_pb2.StepResponse]:
    controller = make_controller(_kernels(), **scenario.config)
    return run_epochs(controller, scenario.make_sim(), scenario.accuracies, before_step=scenario.before_step)


def test_the_troubled_scenario_switches_conservative_mode() -> None:
    modes = [r.signal.conservative_mode for r in _play(SCENARIOS["troubled"])]
    assert modes[9:15] == [False, True, True, True, True, False]
    assert modes[-1]


@pytest.mark.parametrize(("name", "cut"), CUTS)
def test_restoring_an_exported_state_decides_as_if_never_exported(name: str, cut: int) -> None:
    scenario = SCENARIOS[name]
    reference = _play(scenario)
    controller = make_controller(_kernels(), **scenario.config)
    sim = scenario.make_sim()
    before = run_epochs(controller, sim, scenario.accuracies[:cut], before_step=scenario.before_step)
    exported = controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)).state
    wire = exported.SerializeToString()

    restored = make_controller(_kernels(), **scenario.config)
    restored.restore_controller_state(
        tamiyo_pb2.RestoreControllerStateRequest(state=tamiyo_pb2.TamiyoControllerState.FromString(wire))
    )
    after = run_epochs(restored, sim, scenario.accuracies[cut:], start=cut, before_step=scenario.before_step)
    assert _bytes(before + after) == _bytes(reference)


def test_export_uses_active_adaptations_and_blueprint_scores_not_the_deprecated_maps() -> None:
    controller = make_controller(_kernels(), max_concurrent_seeds=2)
    run_epochs(controller, _sim(), ACCURACIES[:10], before_step=_flip_gain)
    state = controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)).state
    assert state.active_adaptations
    assert dict(state.blueprint_scores) == {"bp-a": -1}
    adaptation = state.active_adaptations[0]
    assert adaptation.germination_command_id and adaptation.kernel_id
    assert adaptation.kernel_report.kernel_id == adaptation.kernel_id
    assert adaptation.last_stage in (
        S.SEED_STAGE_GRAFTING,
        S.SEED_STAGE_STABILIZATION,
        S.SEED_STAGE_EVALUATING,
    )
    for deprecated in ("pre_metric", "germination_epoch", "germination_command", "eval_gain"):
        assert len(getattr(state, deprecated)) == 0
    assert state_to_proto(state_from_proto(state)) == state


def test_convert_round_trips_every_field() -> None:
    report = kernel_pb2.UrabraskValidationReport(kernel_id="k", latency_ms_mean=1.5, tags=["x"])
    state = tamiyo_pb2.TamiyoControllerState(
        run_id=RUN,
        best_val_accuracy=0.7,
        epochs_since_improvement=2,
        last_epoch=9,
        embargo_until={"a": 12},
        commands_issued=11,
        conservative_mode=True,
        blueprint_scores={"bp": -2},
        active_adaptations=[
            tamiyo_pb2.ActiveAdaptation(
                seed_id="a",
                germination_command_id="c",
                kernel_id="k",
                blueprint_id="bp",
                germination_epoch=4,
                pre_metric=0.6,
                selected_for_tags=["x"],
                eval_gain=0.01,
                kernel_report=report,
                last_stage=S.SEED_STAGE_FINE_TUNING,
                stage_entry_epoch=8,
            )
        ],
    )
    assert state_to_proto(state_from_proto(state)) == state


def test_a_repeated_step_returns_the_same_response_without_deciding_twice() -> None:
    controller = make_controller(_kernels())
    sim = _sim()
    run_epochs(controller, sim, PLATEAU[:3])
    sim.train_epoch()
    request = sim.request(3, 0.6)
    first = controller.step(request)
    issued = controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)).state
    second = controller.step(request)
    assert first.commands and second == first
    again = controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)).state
    assert again == issued


def test_an_epoch_already_stepped_is_refused_unless_the_state_is_restored() -> None:
    controller = make_controller(_kernels())
    sim = _sim()
    run_epochs(controller, sim, PLATEAU)
    with pytest.raises(FailedPrecondition) as raised:
        controller.step(sim.request(2, 0.55))
    assert raised.value.reason == "FAILED_PRECONDITION"
    assert "epoch 2 is not after the last stepped epoch 3" in raised.value.message


def test_runs_are_tracked_separately() -> None:
    controller = make_controller(_kernels())
    other = SeedSimulator(run_id="run-2")
    run_epochs(controller, _sim(), PLATEAU)
    run_epochs(controller, other, [0.3])
    status = controller.get_status(tamiyo_pb2.GetStatusRequest(run_id=RUN))
    assert (status.current_epoch, status.active_adaptations, status.tracked_runs) == (3, 1, 2)
    assert status.validation_accuracy == pytest.approx(0.6)
    assert status.policy_id == "heuristic-v1"
    overall = controller.get_status(tamiyo_pb2.GetStatusRequest())
    assert (overall.tracked_runs, overall.active_adaptations, overall.current_epoch) == (2, 1, 0)
    other_status = controller.get_status(tamiyo_pb2.GetStatusRequest(run_id="run-2"))
    assert (other_status.current_epoch, other_status.active_adaptations) == (0, 0)


def test_unknown_runs_and_policies_are_not_found() -> None:
    controller = make_controller(None)
    with pytest.raises(NotFound) as raised:
        controller.get_status(tamiyo_pb2.GetStatusRequest(run_id="nope"))
    assert raised.value.reason == "RUN_NOT_FOUND"
    with pytest.raises(NotFound) as raised:
        controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id="nope"))
    assert raised.value.reason == "RUN_NOT_FOUND"
    with pytest.raises(NotFound) as raised:
        controller.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id="simic-v3"))
    assert raised.value.reason == "POLICY_NOT_FOUND"
    assert "Simic" in raised.value.message
    assert controller.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id="heuristic-v1")).policy_id == "heuristic-v1"


def test_the_model_counts_parameters_when_the_request_does_not() -> None:
    class Param:
        def __init__(self, n: int, trainable: bool) -> None:
            self.n, self.requires_grad = n, trainable

        def numel(self) -> int:
            return self.n

    class Model:
        def parameters(self) -> list[Param]:
            return [Param(300, True), Param(100, True), Param(10_000, False)]

    from esper.tamiyo import TamiyoConfig, TamiyoController

    kernels = FakeKernels([kernel("k1", params=50)])
    controller = TamiyoController(Model(), TamiyoConfig(max_seed_parameter_fraction=0.5), kernels=kernels)
    sim = _sim()
    for epoch, accuracy in enumerate(PLATEAU):
        sim.train_epoch()
        request = sim.request(epoch, accuracy)
        request.parameter_count = 0
        controller.step(request)
    assert kernels.queries[-1].query.max_parameter_count == 200
