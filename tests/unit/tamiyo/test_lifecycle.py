"""Scripted runs driving seeds through the lifecycle to each outcome."""

from __future__ import annotations

import pytest

from esper.leyline.v1 import lifecycle_pb2, tamiyo_pb2
from esper.tamiyo.config import TamiyoConfig
from tests.support.tamiyo import (
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


def _state(controller: object) -> tamiyo_pb2.TamiyoControllerState:
    request = tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)
    return controller.export_controller_state(request).state  # type: ignore[attr-defined]


# One seed, for scripts that follow a single adaptation to its end.
ONE_SEED = (descriptor("net.3", 1),)


def _sim(**kwargs: object) -> SeedSimulator:
    sim = SeedSimulator(**kwargs)  # type: ignore[arg-type]
    sim.seeds["net.3"].dead = 0.4  # the stronger bottleneck
    return sim


def test_a_seed_goes_from_dormant_to_fossilized() -> None:
    controller = make_controller(FakeKernels([kernel("k1", params=100, latency_ms=0.3)]))
    sim = _sim()
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.62, 0.65])

    assert commands_by_epoch(responses) == [
        [],
        [],
        [],
        ["net.3:REQUEST_GERMINATION", "net.3:ADVANCE:LOADING"],
        ["net.3:ADVANCE:GRAFTING"],
        [],
        ["net.3:ADVANCE:STABILIZATION"],
        ["net.3:ADVANCE:EVALUATING"],
        ["net.3:ADVANCE:FINE_TUNING"],
        [],
        ["net.3:FOSSILIZE"],
    ]
    assert sim.seeds["net.3"].stage == S.SEED_STAGE_FOSSILIZED
    assert sim.seeds["net.1"].stage == S.SEED_STAGE_DORMANT

    germinate = responses[3].commands[0]
    assert (germinate.kernel_id, germinate.blueprint_id) == ("k1", "bp-k1")
    assert list(germinate.selected_for_tags) == ["numerically_stable"]
    assert germinate.grafting_strategy == S.GRAFTING_STRATEGY_LINEAR_RAMP
    assert germinate.issue_time.seconds == 1_700_000_003
    assert "plateau" in germinate.reason and "bottleneck" in germinate.reason

    rebuilds = [r.signal.optimizer_rebuild_required for r in responses]
    assert rebuilds == [False, False, False, True, False, False, True, False, True, False, True]

    reports = [report for response in responses for report in response.field_reports]
    assert len(reports) == 1
    report = reports[0]
    assert report.outcome == S.ADAPTATION_OUTCOME_FOSSILIZED
    assert (report.seed_id, report.kernel_id, report.blueprint_id) == ("net.3", "k1", "bp-k1")
    assert report.germination_command_id == germinate.command_id
    assert report.pre_metric == pytest.approx(0.60)
    assert report.post_metric == pytest.approx(0.65)
    assert report.epochs_active == 7
    assert report.eval_metrics["eval_gain"] == pytest.approx(0.02)
    assert report.eval_metrics["params_added"] == 100
    assert report.kernel_report.latency_ms_mean == pytest.approx(0.3)
    assert list(report.selected_for_tags) == ["numerically_stable"]
    assert "measured improvement" in report.reason

    state = _state(controller)
    assert dict(state.blueprint_scores) == {"bp-k1": 1}
    assert not state.active_adaptations
    assert state.commands_issued == 7


def test_negative_eval_gain_culls_with_the_numbers_and_embargoes_the_slot() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), embargo_epochs=3)
    sim = _sim(eval_gain=-0.01)
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60])

    # The cull frees the only concurrency slot; the plateau goes on, so the other seed germinates.
    assert commands_by_epoch(responses)[8] == [
        "net.3:CULL",
        "net.1:REQUEST_GERMINATION",
        "net.1:ADVANCE:LOADING",
    ]
    cull = responses[8].commands[0]
    assert "eval gain -0.0100" in cull.reason and "min +0.0000" in cull.reason
    assert responses[8].signal.optimizer_rebuild_required
    reports = [report for response in responses for report in response.field_reports]
    assert [r.outcome for r in reports] == [S.ADAPTATION_OUTCOME_CULLED]
    assert reports[0].eval_metrics["eval_gain"] == pytest.approx(-0.01)
    assert reports[0].eval_metrics["params_added"] == 0
    state = _state(controller)
    assert dict(state.embargo_until) == {"net.3": 11}
    assert dict(state.blueprint_scores) == {"bp-k1": -1}
    assert "net.3" not in {a.seed_id for a in state.active_adaptations}


def test_a_culled_blueprint_is_avoided_next_time() -> None:
    kernels = FakeKernels([kernel("a", latency_ms=0.1), kernel("b", latency_ms=0.9)])
    controller = make_controller(kernels)
    sim = _sim(eval_gain=-0.01)
    responses = run_epochs(controller, sim, [*PLATEAU, *([0.60] * 7)])
    germinations = [c for r in responses for c in r.commands if c.command_type == S.COMMAND_TYPE_REQUEST_GERMINATION]
    # The faster kernel first; once its blueprint is culled here, the other one.
    assert [(c.seed_id, c.kernel_id) for c in germinations] == [("net.3", "a"), ("net.1", "b")]


def test_harm_during_fine_tuning_culls_a_seed_no_longer_holding_accuracy_up() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), harm_threshold=0.02)
    sim = _sim(layout=ONE_SEED)

    def stops_contributing(epoch: int, sim: SeedSimulator) -> None:
        if epoch == 9:
            sim.eval_gain = -0.01  # re-measured while fine-tuning: the seed no longer helps

    responses = run_epochs(
        controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.55], before_step=stops_contributing
    )
    assert commands_by_epoch(responses)[9] == ["net.3:CULL"]
    assert "harm: accuracy 0.5500 is 0.0500 worse than accuracy 0.6000" in responses[9].commands[0].reason
    reports = [report for response in responses for report in response.field_reports]
    assert [(r.outcome, r.post_metric) for r in reports] == [(S.ADAPTATION_OUTCOME_CULLED, pytest.approx(0.55))]


def test_harm_during_fine_tuning_keeps_a_seed_that_holds_accuracy_up_until_fine_tuning_ends() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), harm_threshold=0.02, fine_tune_epochs=2)
    sim = _sim(layout=ONE_SEED)  # its measured eval gain stays +0.02: blending it out would cost more now
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.55, 0.55])
    assert "net.3:CULL" not in commands_by_epoch(responses)[9]
    [decision] = [d for d in responses[9].decisions if d.seed_id == "net.3"]
    assert (
        "is 0.0500 worse than accuracy 0.6000" in decision.reason
        and "holds accuracy up, keep it for now" in decision.reason
    )
    # Fine-tuning over and still below the accuracy at germination: no improvement, culled.
    assert commands_by_epoch(responses)[10] == ["net.3:CULL"]
    assert "no improvement after 2 epochs" in responses[10].commands[0].reason


def test_a_seed_holding_up_a_model_no_better_than_at_germination_is_culled_not_fossilized() -> None:
    # Positive eval gain throughout, but accuracy never beats the germination accuracy.
    controller = make_controller(FakeKernels([kernel("k1")]), fossilize_min_improvement=0.01)
    sim = _sim(layout=ONE_SEED, eval_gain=0.05)
    responses = run_epochs(controller, sim, [*PLATEAU, *([0.60] * 7)])
    assert commands_by_epoch(responses)[10] == ["net.3:CULL"]
    assert "no improvement after 2 epochs" in responses[10].commands[0].reason
    assert "eval gain +0.0500" in responses[10].commands[0].reason


def test_an_improvement_the_seed_does_not_carry_is_not_fossilized() -> None:
    # Accuracy rose (the host kept learning), but blending the seed out costs nothing.
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = _sim(layout=ONE_SEED, eval_gain=0.02)

    def gain_fades(epoch: int, sim: SeedSimulator) -> None:
        if sim.seeds["net.3"].stage == S.SEED_STAGE_FINE_TUNING:
            sim.eval_gain = 0.0

    responses = run_epochs(
        controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.65, 0.70], before_step=gain_fades
    )
    assert commands_by_epoch(responses)[10] == ["net.3:CULL"]


def test_harm_while_grafting_waits_for_evaluating_then_culls_without_readiness() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = _sim(layout=ONE_SEED, stabilize_epochs=1)
    sim.eval_gain = 0.0  # the seed does not hold accuracy up, so the drop is its doing
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.50, 0.50, 0.50, 0.50])
    labels = commands_by_epoch(responses)
    # GRAFTING at epoch 5 with harm: CULL is illegal there, so it only records the harm.
    assert labels[5] == []
    [graft_decision] = [d for d in responses[5].decisions if d.seed_id == "net.3"]
    assert "not legal while GRAFTING" in graft_decision.reason
    assert labels[6] == ["net.3:ADVANCE:STABILIZATION"]
    assert labels[7] == ["net.3:ADVANCE:EVALUATING"]
    # Epoch 8: EVALUATING with the harm still there: culled.
    assert labels[8] == ["net.3:CULL"]
    assert responses[8].commands[0].reason.startswith("harm:")


def test_harm_at_evaluating_culls_before_the_seed_is_ready() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = _sim(layout=ONE_SEED)

    def unready(epoch: int, sim: SeedSimulator) -> None:
        if sim.seeds["net.3"].stage == S.SEED_STAGE_EVALUATING:
            sim.seeds["net.3"].epochs_in_stage = 0  # not ready yet

    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.50], before_step=unready)
    assert commands_by_epoch(responses)[8] == ["net.3:CULL"]
    assert responses[8].commands[0].reason.startswith("harm:")


def test_fixed_function_kernel_skips_training_and_fossilizes_at_evaluating() -> None:
    controller = make_controller(FakeKernels([kernel("k0", params=0)]))
    sim = _sim(layout=ONE_SEED, kernel_params={"k0": 0})
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.62])
    assert commands_by_epoch(responses)[3:] == [
        ["net.3:REQUEST_GERMINATION", "net.3:ADVANCE:LOADING"],
        [],  # GRAFTING straight after loading, alpha 0.5
        ["net.3:ADVANCE:STABILIZATION"],
        ["net.3:ADVANCE:EVALUATING"],
        ["net.3:FOSSILIZE"],
    ]
    [report] = [r for response in responses for r in response.field_reports]
    assert report.outcome == S.ADAPTATION_OUTCOME_FOSSILIZED
    assert "fixed-function" in report.reason
    assert report.eval_metrics["params_added"] == 0


def test_a_fixed_function_kernel_without_improvement_over_germination_is_culled() -> None:
    controller = make_controller(FakeKernels([kernel("k0", params=0)]))
    sim = _sim(layout=ONE_SEED, kernel_params={"k0": 0})  # positive eval gain, flat accuracy
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60, 0.60])
    assert commands_by_epoch(responses)[7] == ["net.3:CULL"]
    assert "no improvement" in responses[7].commands[0].reason
    [report] = [r for response in responses for r in response.field_reports]
    assert report.outcome == S.ADAPTATION_OUTCOME_CULLED


def test_no_improvement_after_fine_tuning_culls() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), fossilize_min_improvement=0.01)
    sim = _sim(layout=ONE_SEED, eval_gain=0.02)

    def gain_fades(epoch: int, sim: SeedSimulator) -> None:
        if sim.seeds["net.3"].stage == S.SEED_STAGE_FINE_TUNING:
            sim.eval_gain = 0.0

    responses = run_epochs(controller, sim, [*PLATEAU, *([0.60] * 7)], before_step=gain_fades)
    assert commands_by_epoch(responses)[10] == ["net.3:CULL"]
    assert "no improvement after 2 epochs" in responses[10].commands[0].reason


def test_kasmina_load_failure_finishes_the_adaptation_as_culled() -> None:
    controller = make_controller(FakeKernels([kernel("bad")]))
    sim = _sim(failing_loads={"bad"})
    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60])
    [report] = responses[4].field_reports
    assert report.outcome == S.ADAPTATION_OUTCOME_CULLED
    assert "Kasmina reports the seed CULLED" in report.reason
    assert not responses[5].field_reports
    assert _state(controller).embargo_until["net.3"] == 4 + TamiyoConfig().embargo_epochs


def test_rolled_back_seed_yields_a_rolled_back_report() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = _sim()

    def rollback(epoch: int, sim: SeedSimulator) -> None:
        if epoch == 5:
            sim.roll_back("net.3")

    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60], before_step=rollback)
    [report] = responses[5].field_reports
    assert report.outcome == S.ADAPTATION_OUTCOME_ROLLED_BACK
    assert dict(_state(controller).blueprint_scores) == {"bp-k1": -1}
    assert not responses[6].field_reports


def test_germination_not_applied_is_reported_cancelled() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = _sim()
    run_epochs(controller, sim, PLATEAU[:3])
    sim.train_epoch()
    response = controller.step(sim.request(3, 0.60))
    assert response.commands  # germination issued, but never applied
    sim.train_epoch()
    response = controller.step(sim.request(4, 0.60))
    [report] = response.field_reports
    assert report.outcome == S.ADAPTATION_OUTCOME_CANCELLED
    assert "still DORMANT" in report.reason


def test_training_that_never_gets_ready_is_cancelled_at_the_timeout() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), stage_timeout_epochs=3)
    sim = _sim(layout=ONE_SEED)

    def never_ready(epoch: int, sim: SeedSimulator) -> None:
        if sim.seeds["net.3"].stage == S.SEED_STAGE_TRAINING:
            sim.seeds["net.3"].epochs_in_stage = 0

    responses = run_epochs(controller, sim, [*PLATEAU, 0.60, 0.60, 0.60], before_step=never_ready)
    assert commands_by_epoch(responses)[4:] == [[], [], ["net.3:CANCEL_GERMINATION"]]
    [report] = responses[6].field_reports
    assert report.outcome == S.ADAPTATION_OUTCOME_CANCELLED
    assert _state(controller).blueprint_scores["bp-k1"] == 0
    assert "net.3" not in _state(controller).embargo_until


def test_every_command_has_a_reason_and_a_matching_decision_and_reports_are_unique() -> None:
    kernels = FakeKernels([kernel("a"), kernel("b", params=0)])
    controller = make_controller(kernels, max_concurrent_seeds=2)
    sim = _sim(eval_gain=-0.01, kernel_params={"b": 0})
    responses = run_epochs(controller, sim, [*PLATEAU, *([0.60] * 16)])
    germinations = [c for r in responses for c in r.commands if c.command_type == S.COMMAND_TYPE_REQUEST_GERMINATION]
    reports = [report for response in responses for report in response.field_reports]
    assert len(germinations) >= 3
    assert len({r.report_id for r in reports}) == len(reports)
    # Exactly one report per finished adaptation; the unfinished ones are still tracked.
    reported = [r.germination_command_id for r in reports]
    active = {a.germination_command_id for a in _state(controller).active_adaptations}
    assert len(reported) == len(set(reported))
    assert not set(reported) & active
    assert set(reported) | active == {c.command_id for c in germinations}
    for response in responses:
        decided = {d.command_id: d for d in response.decisions if d.command_id}
        for command in response.commands:
            assert command.reason
            assert decided[command.command_id].reason == command.reason
            assert decided[command.command_id].command_type == command.command_type
        assert all(d.reason for d in response.decisions)


def test_without_telemetry_evaluating_waits_for_an_eval_gain_then_times_out() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), stage_timeout_epochs=3)
    sim = _sim(layout=ONE_SEED, send_telemetry=False)
    responses = run_epochs(controller, sim, [*PLATEAU, *([0.60] * 7)])
    labels = commands_by_epoch(responses)
    assert labels[7] == ["net.3:ADVANCE:EVALUATING"]
    assert labels[8:10] == [[], []]
    assert [d.reason for d in responses[8].decisions if d.seed_id] == [
        "EVALUATING epoch 1: no telemetry, so no eval gain"
    ]
    assert labels[10] == ["net.3:CULL"]
    assert "EVALUATING gave no result in 3 epochs" in responses[10].commands[0].reason
    [report] = responses[10].field_reports
    assert "params_added" not in report.eval_metrics  # unknown without telemetry
