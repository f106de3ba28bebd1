"""When, where and with which kernel Tamiyo germinates."""

from __future__ import annotations

import pytest

from esper.errors import Unavailable
from esper.leyline.v1 import kernel_pb2, lifecycle_pb2, tamiyo_pb2
from esper.state import SeedFeatures
from esper.tamiyo.germination import bottleneck_ranking
from esper.tamiyo.kernels import KernelSearch, choose_kernel, tag_ladder
from esper.tamiyo.observation import SeedView
from tests.support.tamiyo import (
    LAYOUT,
    PLATEAU,
    RUN,
    FakeKernels,
    SeedSimulator,
    commands_by_epoch,
    descriptor,
    kernel,
    make_controller,
    run_epochs,
)

S = lifecycle_pb2
GERMINATE = ["net.3:REQUEST_GERMINATION", "net.3:ADVANCE:LOADING"]


def _sim() -> SeedSimulator:
    sim = SeedSimulator()
    sim.seeds["net.3"].dead = 0.4
    return sim


def _run_level(response: tamiyo_pb2.StepResponse) -> list[str]:
    return [d.reason for d in response.decisions if not d.seed_id]


def test_no_germination_during_warm_up_or_without_a_plateau() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), warmup_epochs=5, patience=2)
    responses = run_epochs(controller, _sim(), [0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6])
    labels = commands_by_epoch(responses)
    assert labels[:7] == [[]] * 7
    assert labels[7] == GERMINATE
    assert "warm-up (epoch 4 < 5)" in _run_level(responses[4])[0]
    assert "no plateau: best accuracy 0.6000, 1 of 2 epochs" in _run_level(responses[6])[0]


def test_slow_creep_below_min_delta_is_a_plateau() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), min_delta=0.01, patience=2)
    responses = run_epochs(controller, _sim(), [0.50, 0.60, 0.605, 0.609])
    assert commands_by_epoch(responses)[3] == GERMINATE


def test_the_seed_with_the_strongest_bottleneck_is_chosen() -> None:
    sim = SeedSimulator()
    sim.seeds["net.1"].correlation = 0.9  # redundant units
    sim.seeds["net.3"].variance = 0.5  # somewhat collapsed
    responses = run_epochs(make_controller(FakeKernels([kernel("k1")])), sim, PLATEAU)
    assert responses[3].commands[0].seed_id == "net.1"
    assert "bottleneck 1.00 (dead 0.100, correlation 0.900" in responses[3].commands[0].reason


def _view(seed_id: str, *, dead: float = 0.0, corr: float = 0.0, var: float = 1.0) -> SeedView:
    features = SeedFeatures(seed_id, S.SEED_STAGE_DORMANT, 0.0, var, dead, corr, 0, False)
    return SeedView(descriptor(seed_id, 0), features, None)


def test_bottleneck_score_is_normalised_across_seeds_and_ties_keep_layout_order() -> None:
    ranked = bottleneck_ranking(
        [
            _view("a", dead=0.2, corr=0.5, var=2.0),
            _view("b", dead=0.6, corr=0.5, var=1.0),
            _view("c", dead=0.2, corr=0.5, var=2.0),
        ]
    )
    assert [(r.view.seed_id, r.score) for r in ranked] == [("b", 2.0), ("a", 0.0), ("c", 0.0)]
    assert ranked[0].dead == 1.0 and ranked[0].collapsed == 1.0 and ranked[0].redundant == 0.0
    # One candidate alone has nothing to compare with: score 0, still chosen.
    assert [r.score for r in bottleneck_ranking([_view("only", dead=0.9)])] == [0.0]


def test_budget_of_concurrent_seeds_is_respected() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), max_concurrent_seeds=1)
    responses = run_epochs(controller, _sim(), [*PLATEAU, 0.60, 0.60, 0.60])
    labels = commands_by_epoch(responses)
    assert sum(label.endswith("REQUEST_GERMINATION") for step in labels for label in step) == 1
    assert any("budget full: 1 of 1 concurrent seeds active (net.3)" in r for r in _run_level(responses[5]))


def test_a_budget_of_two_lets_a_second_seed_germinate_after_another_plateau() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), max_concurrent_seeds=2, patience=2)
    responses = run_epochs(controller, _sim(), [*PLATEAU, 0.60, 0.60])
    labels = commands_by_epoch(responses)
    assert labels[3] == GERMINATE
    # The plateau counter restarts at germination: the next one needs `patience` more epochs.
    assert "net.1:REQUEST_GERMINATION" not in labels[4]
    assert labels[5][-2:] == ["net.1:REQUEST_GERMINATION", "net.1:ADVANCE:LOADING"]


def test_an_untracked_active_seed_holds_a_slot() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = _sim()
    sim.seeds["net.1"].stage = S.SEED_STAGE_TRAINING  # germinated by someone else
    responses = run_epochs(controller, sim, PLATEAU)
    assert commands_by_epoch(responses)[3] == []
    assert any("Tamiyo did not germinate it" in d.reason for d in responses[3].decisions if d.seed_id == "net.1")
    assert any("budget full" in r for r in _run_level(responses[3]))


def test_an_embargoed_seed_waits_until_the_embargo_ends() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), conservative_after_failures=3)
    state = tamiyo_pb2.TamiyoControllerState(
        run_id=RUN,
        best_val_accuracy=0.6,
        epochs_since_improvement=5,
        last_epoch=2,
        embargo_until={"net.1": 6, "net.3": 5},
    )
    controller.restore_controller_state(tamiyo_pb2.RestoreControllerStateRequest(state=state))
    responses = run_epochs(controller, _sim(), [0.6, 0.6, 0.6], start=3)
    labels = commands_by_epoch(responses)
    assert labels[:2] == [[], []]
    assert "no dormant seed free (embargoed: net.1, net.3)" in _run_level(responses[0])[0]
    assert "(embargoed: net.1, net.3)" in _run_level(responses[1])[0]
    assert labels[2] == GERMINATE  # epoch 5: net.3's embargo is over, net.1's is not


def test_no_validated_kernel_is_a_waiting_decision_without_commands() -> None:
    kernels = FakeKernels(
        [kernel("other-shape", dims=(64,)), kernel("rejected", status=kernel_pb2.KERNEL_STATUS_REJECTED)]
    )
    responses = run_epochs(make_controller(kernels), _sim(), PLATEAU)
    assert not responses[3].commands
    waits = [d.reason for d in responses[3].decisions if d.seed_id]
    # Both seeds share the site, so it is asked for once, for the stronger bottleneck.
    assert len(waits) == 1
    assert "waiting: no validated kernel for FEATURES [32]" in waits[0]
    query = kernels.queries[-1].query
    assert query.status == kernel_pb2.KERNEL_STATUS_VALIDATED
    assert list(query.input_shape.dims) == [32]


def test_a_seed_with_another_site_is_tried_when_the_first_has_no_kernel() -> None:
    sim = SeedSimulator(layout=(descriptor("wide", 0, (64,)), descriptor("narrow", 1, (32,))))
    sim.seeds["wide"].dead = 0.5
    responses = run_epochs(make_controller(FakeKernels([kernel("k32")])), sim, PLATEAU)
    assert commands_by_epoch(responses)[3] == ["narrow:REQUEST_GERMINATION", "narrow:ADVANCE:LOADING"]
    assert any("no validated kernel for FEATURES [64]" in d.reason for d in responses[3].decisions)


def test_without_a_kernel_directory_tamiyo_waits_until_one_is_attached() -> None:
    controller = make_controller(None)
    sim = _sim()
    responses = run_epochs(controller, sim, PLATEAU)
    assert not responses[3].commands
    assert "no kernel directory attached" in _run_level(responses[3])[0]
    controller.attach_kernels(FakeKernels([kernel("k1")]))
    assert commands_by_epoch(run_epochs(controller, sim, [0.6], start=4)) == [GERMINATE]


def test_a_failing_kernel_query_waits_instead_of_failing_the_step() -> None:
    kernels = FakeKernels([kernel("k1")])
    kernels.error = Unavailable("urza is down")
    responses = run_epochs(make_controller(kernels), _sim(), PLATEAU)
    assert not responses[3].commands
    assert any("kernel query for FEATURES [32] failed: UNAVAILABLE" in d.reason for d in responses[3].decisions)


def test_preferred_tags_are_retried_without_tags_when_nothing_matches() -> None:
    kernels = FakeKernels([kernel("plain", tags=())])
    responses = run_epochs(make_controller(kernels), _sim(), PLATEAU)
    germinate = responses[3].commands[0]
    assert germinate.kernel_id == "plain"
    assert list(germinate.selected_for_tags) == []
    assert [list(q.query.tags_all) for q in kernels.queries] == [["numerically_stable"], []]


def test_kernel_size_is_bounded_by_the_parameter_budget() -> None:
    kernels = FakeKernels([kernel("big", params=50_000), kernel("small", params=2_000, latency_ms=9.0)])
    controller = make_controller(kernels, max_seed_parameter_fraction=0.5, max_seed_parameters=30_000)
    responses = run_epochs(controller, _sim(), PLATEAU)  # the model has 10,000 parameters
    assert responses[3].commands[0].kernel_id == "small"
    assert kernels.queries[-1].query.max_parameter_count == 5_000


def _search(kernels: FakeKernels, ladder: tuple[tuple[str, ...], ...] = ((),)) -> KernelSearch:
    return KernelSearch(kernels, ladder, max_parameter_count=0, page_size=2, max_candidates=100)


def test_kernel_ranking_prefers_more_capacity_over_lower_latency() -> None:
    kernels = FakeKernels(
        [
            kernel("a-tiny-fast", params=8, latency_ms=0.01),
            kernel("b-big-slow", params=2_000, latency_ms=1.0),
            kernel("c-big-fast", params=1_500, latency_ms=0.5),  # same binary order of magnitude as b
        ]
    )
    choice = choose_kernel(_search(kernels), LAYOUT[0], {})
    assert choice is not None and choice.kernel.kernel_id == "c-big-fast"
    assert "1500 params" in choice.reason


def test_a_culled_blueprint_ranks_last_whatever_its_capacity() -> None:
    kernels = FakeKernels(
        [kernel("big", blueprint_id="bp-culled", params=4_000), kernel("small", blueprint_id="bp-new", params=10)]
    )
    choice = choose_kernel(_search(kernels), LAYOUT[0], {"bp-culled": -1})
    assert choice is not None and choice.kernel.kernel_id == "small"


def test_no_germination_when_too_few_epochs_remain_to_finish() -> None:
    # The plateau is reached at epoch 3.
    late = run_epochs(make_controller(FakeKernels([kernel("k1")]), min_epochs_to_finish=6), _sim_with_final(8), PLATEAU)
    assert commands_by_epoch(late)[3] == []
    assert "5 epoch(s) left, an adaptation needs 6 to finish" in _run_level(late[3])[0]
    in_time = run_epochs(
        make_controller(FakeKernels([kernel("k1")]), min_epochs_to_finish=6), _sim_with_final(9), PLATEAU
    )
    assert commands_by_epoch(in_time)[3] == GERMINATE


def _sim_with_final(final_epoch: int) -> SeedSimulator:
    sim = _sim()
    sim.final_epoch = final_epoch
    return sim


def test_kernel_ranking_prefers_proven_blueprints_then_lower_latency_then_id() -> None:
    kernels = FakeKernels(
        [
            kernel("z-fast", blueprint_id="bp-new", latency_ms=0.1),
            kernel("b-slow", blueprint_id="bp-good", latency_ms=5.0),
            kernel("culled-fastest", blueprint_id="bp-bad", latency_ms=0.01),
            kernel("a-fast", blueprint_id="bp-newer", latency_ms=0.1),
        ]
    )
    site = LAYOUT[0]
    choice = choose_kernel(_search(kernels), site, {"bp-good": 1, "bp-bad": -1})
    assert choice is not None and choice.kernel.kernel_id == "b-slow"
    choice = choose_kernel(_search(kernels), site, {"bp-bad": -1})
    assert choice is not None and choice.kernel.kernel_id == "a-fast"  # same latency: lower id
    assert "best of 4 validated" in choice.reason  # all pages were read (page size 2)


def test_a_blueprint_counts_once_by_its_best_pipeline() -> None:
    fast = kernel("bp1-fast", blueprint_id="bp-1", latency_ms=0.01)
    fast.pipeline = kernel_pb2.COMPILATION_PIPELINE_FAST
    standard = kernel("bp1-standard", blueprint_id="bp-1", latency_ms=5.0)
    standard.pipeline = kernel_pb2.COMPILATION_PIPELINE_STANDARD
    choice = choose_kernel(_search(FakeKernels([fast])), LAYOUT[0], {})
    assert choice is not None and choice.kernel.kernel_id == "bp1-fast"  # FAST serves until STANDARD is validated
    choice = choose_kernel(_search(FakeKernels([fast, standard])), LAYOUT[0], {})
    assert choice is not None and choice.kernel.kernel_id == "bp1-standard", "STANDARD wins, whatever the latency"
    assert "best of 1 validated" in choice.reason


def test_kernel_without_a_latency_report_ranks_after_measured_ones() -> None:
    unmeasured = kernel("a-unmeasured")
    unmeasured.ClearField("validation_report")
    kernels = FakeKernels([unmeasured, kernel("b-measured", latency_ms=3.0)])
    choice = choose_kernel(_search(kernels), LAYOUT[0], {})
    assert choice is not None and choice.kernel.kernel_id == "b-measured"


def test_a_directory_ignoring_the_filter_cannot_hand_over_a_misfit() -> None:
    class Sloppy(FakeKernels):
        def query_kernels(self, request):  # type: ignore[no-untyped-def]
            request.query.ClearField("input_shape")
            return super().query_kernels(request)

    choice = choose_kernel(_search(Sloppy([kernel("wrong", dims=(8,))])), LAYOUT[0], {})
    assert choice is None


def test_tag_ladder_is_distinct_and_ends_without_tags() -> None:
    assert tag_ladder(("a", "b", "a"), ("a",), ("a",)) == (("a", "b"), ("a",), ())
    assert tag_ladder(()) == ((),)


def test_after_a_recent_failure_conservative_tags_are_asked_for_first() -> None:
    kernels = FakeKernels([kernel("k1", tags=("numerically_stable",))])
    controller = make_controller(kernels, preferred_tags=("numerically_stable",), conservative_tags=("low_memory",))
    state = tamiyo_pb2.TamiyoControllerState(
        run_id=RUN,
        best_val_accuracy=0.6,
        epochs_since_improvement=5,
        last_epoch=3,
        embargo_until={"net.1": 5},
    )
    controller.restore_controller_state(tamiyo_pb2.RestoreControllerStateRequest(state=state))
    responses = run_epochs(controller, _sim(), [0.6], start=4)
    assert commands_by_epoch(responses) == [GERMINATE]
    assert [list(q.query.tags_all) for q in kernels.queries] == [
        ["numerically_stable", "low_memory"],
        ["numerically_stable"],
    ]
    assert list(responses[0].commands[0].selected_for_tags) == ["numerically_stable"]


@pytest.mark.parametrize(
    "strategy, value",
    [
        ("COSINE_RAMP", S.GRAFTING_STRATEGY_COSINE_RAMP),
        ("grafting_strategy_drift_controlled", S.GRAFTING_STRATEGY_DRIFT_CONTROLLED),
    ],
)
def test_the_configured_grafting_strategy_goes_with_the_germination(strategy: str, value: int) -> None:
    responses = run_epochs(make_controller(FakeKernels([kernel("k1")]), grafting_strategy=strategy), _sim(), PLATEAU)
    assert responses[3].commands[0].grafting_strategy == value


def test_recent_kernel_answers_are_reused_for_a_few_seconds() -> None:
    from esper.leyline.v1 import urza_pb2
    from esper.tamiyo.kernels import RecentKernels

    now = [100.0]
    directory = FakeKernels([kernel("k1")])
    recent = RecentKernels(directory, 10.0, clock=lambda: now[0])
    request = urza_pb2.QueryKernelsRequest(page_size=5)
    assert [k.kernel_id for k in recent.query_kernels(request).result.kernels] == ["k1"]
    directory.kernels.append(kernel("k2"))
    now[0] += 9.0
    assert len(recent.query_kernels(request).result.kernels) == 1
    now[0] += 2.0
    assert len(recent.query_kernels(request).result.kernels) == 2
    assert len(directory.queries) == 2
