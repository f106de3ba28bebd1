"""Tamiyo's rules serve any metric: a lower-is-better one (a loss, bits per character) decides like accuracy."""

from __future__ import annotations

import pytest

from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2, tamiyo_pb2
from tests.support.tamiyo import (
    PLATEAU,
    RUN,
    FakeKernels,
    SeedSimulator,
    commands_by_epoch,
    kernel,
    make_controller,
    run_epochs,
)

S = lifecycle_pb2
# Plateau, germination, a dip that harms (cull), another plateau, a germination that pays (fossilize).
SCRIPT = [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.60, 0.62, 0.65, 0.66, 0.66, 0.66, 0.70, 0.71, 0.72, 0.75]


def _run(direction: int, script: list[float]) -> tuple[list[list[str]], list[tamiyo_pb2.StepResponse]]:
    controller = make_controller(FakeKernels([kernel("k1", params=100, latency_ms=0.3)]))
    sim = SeedSimulator(metric_direction=direction)
    sim.seeds["net.3"].dead = 0.4
    responses = run_epochs(controller, sim, script)
    return commands_by_epoch(responses), responses


@pytest.mark.parametrize("direction", [S.METRIC_DIRECTION_LOWER_IS_BETTER, S.METRIC_DIRECTION_HIGHER_IS_BETTER])
def test_the_same_trajectory_in_any_metric_gets_the_same_decisions(direction: int) -> None:
    by_accuracy, _ = _run(S.METRIC_DIRECTION_UNSPECIFIED, SCRIPT)
    by_metric, _ = _run(direction, SCRIPT)
    assert by_metric == by_accuracy
    assert any("FOSSILIZE" in label for step in by_metric for label in step)


def test_a_lower_is_better_metric_that_rises_is_harm() -> None:
    # The loss rises by 0.05 after germination: worse, although the number went up.
    script = [*PLATEAU, 0.60, 0.60, 0.60, 0.60, 0.55, 0.55, 0.55, 0.55]
    labels, responses = _run(S.METRIC_DIRECTION_LOWER_IS_BETTER, script)
    culls = [r for r in responses for c in r.commands if c.command_type == S.COMMAND_TYPE_CULL]
    assert culls, labels
    reason = next(c.reason for c in culls[0].commands if c.command_type == S.COMMAND_TYPE_CULL)
    # The target is the loss at germination minus the margin: lower.
    assert "no improvement" in reason and "metric 0.4500 (lower is better) vs metric 0.3980" in reason
    decisions = [d.reason for r in responses for d in r.decisions]
    assert any("metric 0.4500 (lower is better) is 0.0500 worse than metric 0.4000" in text for text in decisions)


def test_field_reports_carry_the_metric_in_its_own_units_and_its_direction() -> None:
    _, responses = _run(S.METRIC_DIRECTION_LOWER_IS_BETTER, SCRIPT)
    reports = [report for response in responses for report in response.field_reports]
    assert reports
    for report in reports:
        assert report.metric_direction == S.METRIC_DIRECTION_LOWER_IS_BETTER
        # 1 - accuracy: the losses the script sent, not their negated scores.
        assert 0.0 < report.pre_metric < 1.0 and 0.0 < report.post_metric < 1.0


def test_a_packet_naming_an_unknown_direction_is_refused() -> None:
    controller = make_controller()
    request = SeedSimulator().request(0, 0.5)
    request.packet.metric_direction = 7  # type: ignore[assignment]
    with pytest.raises(InvalidArgument) as raised:
        controller.step(request)
    assert [v.field for v in raised.value.violations] == ["packet.metric_direction"]


def test_a_controller_state_with_a_negative_best_score_restores() -> None:
    controller = make_controller()
    state = tamiyo_pb2.TamiyoControllerState(run_id=RUN, best_val_accuracy=-2.31)
    controller.restore_controller_state(tamiyo_pb2.RestoreControllerStateRequest(state=state))
    exported = controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id=RUN)).state
    assert exported.best_val_accuracy == pytest.approx(-2.31)
