"""Width or depth, the parameter budget, and growth that stops when it no longer pays."""

from __future__ import annotations

from collections.abc import Sequence

from esper.leyline.v1 import blueprint_pb2, control_pb2, lifecycle_pb2, tamiyo_pb2, telemetry_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.convert import state_from_proto, state_to_proto
from esper.tamiyo.growth import growth_stopped
from esper.tamiyo.state import GrowthStep, RunState
from tests.support.tamiyo import (
    PLATEAU,
    FakeKernels,
    SeedSimulator,
    commands_by_epoch,
    kernel,
    make_controller,
    run_epochs,
)

S = lifecycle_pb2
FEATURES = blueprint_pb2.INPUT_KIND_FEATURES


def _seed(
    seed_id: str, layer: int, units: int, *, width_in: Sequence[int] = (), width_out: Sequence[int] = ()
) -> telemetry_pb2.SeedDescriptor:
    message = telemetry_pb2.SeedDescriptor(seed_id=seed_id, layer_index=layer, input_kind=FEATURES, layer_units=units)
    if width_in:
        message.growth_kind = blueprint_pb2.GROWTH_KIND_WIDTH
        message.input_shape.dims.extend(width_in)
        message.output_shape.dims.extend(width_out)
    else:
        message.growth_kind = blueprint_pb2.GROWTH_KIND_DEPTH
        message.input_shape.dims.append(units)
    return message


def _layout(units: int) -> tuple[telemetry_pb2.SeedDescriptor, ...]:
    """An MLP 6 -> units -> units -> 2 with a width and a depth seed at each hidden layer."""
    return (
        _seed("w:fc1", 0, units, width_in=(6,), width_out=(units,)),
        _seed("act1", 0, units),
        _seed("w:fc2", 1, units, width_in=(units,), width_out=(2,)),
        _seed("act2", 1, units),
    )


def _kernels(units: int) -> FakeKernels:
    return FakeKernels(
        [
            kernel("wide1-small", params=44, dims=(6,), output_dims=(units,)),
            kernel("wide1-big", params=400, dims=(6,), output_dims=(units,)),
            kernel("wide2", params=56, dims=(units,), output_dims=(2,)),
            kernel("deep", params=200, dims=(units,)),
        ]
    )


def _germinations(responses: Sequence[tamiyo_pb2.StepResponse]) -> list[control_pb2.AdaptationCommand]:
    return [c for r in responses for c in r.commands if c.command_type == S.COMMAND_TYPE_REQUEST_GERMINATION]


def _germinated(responses: Sequence[tamiyo_pb2.StepResponse]) -> list[str]:
    return [c.seed_id for c in _germinations(responses)]


def test_a_narrow_layer_is_widened_by_a_kernel_no_larger_than_the_model() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58)
    responses = run_epochs(make_controller(_kernels(4)), sim, PLATEAU)
    germinate = _germinations(responses)[0]
    assert (germinate.seed_id, germinate.kernel_id) == ("w:fc1", "wide1-small")
    assert "widen layer 0 (4 units, dead 0.10, correlation 0.20): narrow: 4 units < 16" in germinate.reason
    assert "model 58 -> 102 params" in germinate.reason


def test_healthy_wide_units_get_a_depth_seed_and_dead_ones_a_width_seed() -> None:
    sim = SeedSimulator(layout=_layout(32), parameter_count=10_000)
    responses = run_epochs(make_controller(_kernels(32), max_concurrent_seeds=2, patience=2), sim, PLATEAU)
    assert _germinated(responses) == ["act1"]
    assert "deepen layer 0 (32 units, dead 0.10, correlation 0.20): healthy units" in responses[3].commands[0].reason
    dead = SeedSimulator(layout=_layout(32), parameter_count=10_000)
    dead.seeds["w:fc2"].dead = 0.5
    responses = run_epochs(make_controller(_kernels(32)), dead, PLATEAU)
    assert _germinated(responses) == ["w:fc2"]
    assert "dead units: 0.50 >= 0.25" in _germinations(responses)[0].reason


def test_one_adaptation_per_layer_and_the_narrowest_layer_first() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=300)
    sim.added_units["wide-done"] = 8
    sim.seeds["w:fc1"].stage, sim.seeds["w:fc1"].kernel_id = S.SEED_STAGE_FOSSILIZED, "wide-done"
    controller = make_controller(_kernels(4), max_concurrent_seeds=2, patience=2)
    responses = run_epochs(controller, sim, [*PLATEAU, 0.6, 0.6])
    # Layer 0 now computes 12 units, layer 1 only 4: layer 1 is widened first, before any plateau.
    assert _germinated(responses)[0] == "w:fc2"
    assert "widen layer 1 (4 units" in responses[2].commands[0].reason
    # Layer 1 is busy; layer 0 (12 units, still narrow) has no width seed free in this layout, so
    # at the plateau its depth seed deepens it.
    assert _germinated(responses)[1] == "act1"
    assert "no width seed free" in _germinations(responses)[1].reason
    assert "plateau (" in _germinations(responses)[1].reason


def test_a_narrow_layer_grows_before_a_plateau_and_nothing_else_does() -> None:
    climbing = [0.5, 0.55, 0.6, 0.65, 0.7]
    narrow = run_epochs(make_controller(_kernels(4)), SeedSimulator(layout=_layout(4), parameter_count=58), climbing)
    assert _germinated(narrow) == ["w:fc1"]
    assert "no plateau yet (" in _germinations(narrow)[0].reason
    healthy = SeedSimulator(layout=_layout(32), parameter_count=10_000)
    waits = run_epochs(make_controller(_kernels(32)), healthy, climbing)
    assert _germinated(waits) == []
    assert any("no layer is short of units" in d.reason for d in waits[3].decisions)
    off = make_controller(_kernels(4), widen_without_plateau=False)
    assert _germinated(run_epochs(off, SeedSimulator(layout=_layout(4), parameter_count=58), climbing)) == []


def test_every_kernel_is_at_most_a_step_of_the_model_and_the_largest_that_fits_is_taken() -> None:
    sim = SeedSimulator(layout=_layout(32), parameter_count=250)
    kernels = FakeKernels([kernel(f"deep-{p}", params=p, dims=(32,)) for p in (50, 200, 240, 600)])
    responses = run_epochs(make_controller(kernels, growth_step_fraction=1.0), sim, PLATEAU)
    assert responses[3].commands[0].kernel_id == "deep-240"
    assert kernels.queries[-1].query.max_parameter_count == 250


def test_a_layer_where_growth_hardly_paid_waits_for_the_one_where_it_paid() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=200)
    controller = make_controller(_kernels(4), max_concurrent_seeds=2, patience=2)
    run_epochs(controller, sim, [0.5, 0.6])
    state = controller._runs["run-1"]  # the controller's own memory of the run
    state.growth_steps.extend(
        [
            GrowthStep("w:fc1", blueprint_pb2.GROWTH_KIND_WIDTH, 44, 0.20, 1),  # 4.5 points per parameter
            GrowthStep("w:fc2", blueprint_pb2.GROWTH_KIND_WIDTH, 56, 0.02, 1),  # 0.4
        ]
    )
    sim.seeds["w:fc1"].stage = S.SEED_STAGE_TRAINING  # layer 0 busy
    responses = run_epochs(controller, sim, [0.6, 0.6], start=2)
    # Not another width step at layer 1; depth there is untried, so that is what it tries.
    assert _germinated(responses) == ["act2"]
    held = [d.reason for d in responses[1].decisions if d.seed_id == "w:fc2"]
    assert held and "held: its last growth bought 35.71 points per 1,000 parameters, under 0.25" in held[0]


def test_without_a_width_kernel_the_layer_is_deepened() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58)
    responses = run_epochs(make_controller(FakeKernels([kernel("deep", params=50, dims=(4,))])), sim, PLATEAU)
    assert _germinated(responses) == ["act1"]
    waits = [d.reason for d in responses[3].decisions if d.seed_id == "w:fc1"]
    assert waits and "no validated kernel for width FEATURES [6] -> [4]" in waits[0]


def test_the_parameter_budget_is_never_exceeded() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58)
    kernels = _kernels(4)
    responses = run_epochs(make_controller(kernels, max_parameters=100), sim, PLATEAU)
    # 44 would take the model to 102 > 100: nothing at layer 0 fits; layer 1's 56 does not either.
    assert _germinated(responses) == []
    assert all(q.query.max_parameter_count <= 42 for q in kernels.queries)
    full = SeedSimulator(layout=_layout(4), parameter_count=418)
    responses = run_epochs(make_controller(_kernels(4), max_parameters=418), full, PLATEAU)
    assert _germinated(responses) == []
    assert any("parameter budget reached: the model has 418 of 418" in d.reason for d in responses[3].decisions)


def test_growth_stops_when_it_no_longer_pays() -> None:
    config = TamiyoConfig(min_gain_per_kparam=0.01, gain_window=2)
    state = RunState("run")
    assert growth_stopped(config, state) == ""
    state.growth_steps.append(GrowthStep("w:fc1", 2, 100, 0.05, 4))
    assert growth_stopped(config, state) == ""  # one step is not enough to judge
    state.growth_steps.append(GrowthStep("act1", 1, 2_000, 0.002, 9))
    # 5.2 points for 2,100 parameters: 2.48 per 1,000, above 1.
    assert growth_stopped(config, state) == ""
    state.growth_steps.append(GrowthStep("w:fc2", 2, 1_000, 0.001, 12))
    reason = growth_stopped(config, state)
    assert "bought +0.30 points of the metric for 3000 parameters, 0.10 points per 1,000 < 1.00" in reason
    assert growth_stopped(TamiyoConfig(min_gain_per_kparam=0.0), state) == ""


def test_fossilizations_are_recorded_as_growth_steps_and_survive_a_checkpoint() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58, kernel_params={"wide1-small": 44})
    controller = make_controller(_kernels(4), min_training_epochs=1, fine_tune_epochs=1, max_concurrent_seeds=1)
    accuracies = [0.5, 0.6, 0.6, 0.62, 0.64, 0.66, 0.68, 0.7, 0.72, 0.74, 0.75, 0.75, 0.75]
    responses = run_epochs(controller, sim, accuracies)
    assert "w:fc1:FOSSILIZE" in [label for step in commands_by_epoch(responses) for label in step]
    state = controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id="run-1")).state
    (step,) = state.growth_steps[:1]
    assert (step.seed_id, step.growth_kind, step.parameter_count) == ("w:fc1", blueprint_pb2.GROWTH_KIND_WIDTH, 44)
    assert step.accuracy_gain > 0
    assert state_to_proto(state_from_proto(state)) == state


def test_a_layer_whose_input_is_dead_is_not_widened() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58)
    for seed_id in ("w:fc1", "act1"):
        sim.seeds[seed_id].dead = 1.0  # every unit of layer 0 dead: layer 1's new units would read zeros
    controller = make_controller(_kernels(4), max_concurrent_seeds=2)
    responses = run_epochs(controller, sim, [0.5, 0.5, 0.5, 0.5])
    assert _germinated(responses) == ["w:fc1"]
    held = [d.reason for r in responses for d in r.decisions if d.seed_id == "w:fc2"]
    assert held and "held: what enters it is dead: every unit of layer 0 never fires" in held[-1]


def test_a_layer_that_feeds_a_dead_layer_is_not_widened() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58)
    for seed_id in ("w:fc2", "act2"):
        sim.seeds[seed_id].dead = 1.0  # every unit of layer 1 dead: layer 0's new units would get no gradient
    controller = make_controller(_kernels(4), max_concurrent_seeds=2)
    responses = run_epochs(controller, sim, [0.5, 0.5, 0.5, 0.5])
    assert _germinated(responses) == ["w:fc2"]
    held = [d.reason for r in responses for d in r.decisions if d.seed_id == "w:fc1"]
    assert held and "held: what it feeds is dead: every unit of layer 1 never fires" in held[-1]


def test_a_run_that_validates_perfectly_does_not_grow() -> None:
    sim = SeedSimulator(layout=_layout(4), parameter_count=58)
    responses = run_epochs(make_controller(_kernels(4)), sim, [0.5, 1.0, 1.0, 1.0, 1.0])
    assert _germinated(responses) == []
    reasons = [d.reason for d in responses[-1].decisions if not d.seed_id]
    assert any("validation accuracy is 100 %" in reason for reason in reasons)
