"""Conservative mode and the emergency rollback signal."""

from __future__ import annotations

import math

from esper.leyline.v1 import tamiyo_pb2
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


def _run_level(response: tamiyo_pb2.StepResponse) -> list[str]:
    return [d.reason for d in response.decisions if not d.seed_id]


def test_configured_conservative_mode_blocks_germination_and_is_signalled() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), conservative_mode=True)
    responses = run_epochs(controller, SeedSimulator(), [*PLATEAU, 0.6, 0.6])
    assert all(not r.commands for r in responses)
    assert all(r.signal.conservative_mode for r in responses)
    assert "conservative mode on: set by configuration" in _run_level(responses[0])
    assert "conservative mode: no new germination" in _run_level(responses[3])[-1]
    # The switch is a decision once, not every epoch.
    switches = [d for r in responses for d in _run_level(r) if d.startswith("conservative mode on")]
    assert len(switches) == 1


def _restore(controller: object, **fields: object) -> None:
    state = tamiyo_pb2.TamiyoControllerState(run_id=RUN, best_val_accuracy=0.6, **fields)  # type: ignore[arg-type]
    controller.restore_controller_state(  # type: ignore[attr-defined]
        tamiyo_pb2.RestoreControllerStateRequest(state=state)
    )


def test_failures_on_distinct_slots_turn_conservative_mode_on_until_calm_epochs_pass() -> None:
    controller = make_controller(
        FakeKernels([kernel("k1")]),
        embargo_epochs=1,
        conservative_after_failures=2,
        trouble_window_epochs=4,
        calm_epochs=3,
    )
    # net.1 failed at epoch 9, net.3 at epoch 10 (embargo_until = failure + 1).
    _restore(controller, epochs_since_improvement=5, last_epoch=10, embargo_until={"net.1": 10, "net.3": 11})
    responses = run_epochs(controller, SeedSimulator(), [0.6] * 4, start=11)
    labels = commands_by_epoch(responses)
    on = responses[0]
    assert on.signal.conservative_mode
    assert "conservative mode on: 2 slots failed within the last 4 epochs (net.1, net.3; threshold 2)" in (
        _run_level(on)
    )
    assert labels[:2] == [[], []]
    assert responses[1].signal.conservative_mode  # epoch 12: 2 of 3 calm epochs
    off = responses[2]  # epoch 13: 3 calm epochs since epoch 10
    assert not off.signal.conservative_mode
    assert "conservative mode off: 3 calm epochs since the last failure at epoch 10 (need 3)" in _run_level(off)
    assert labels[2][0].endswith("REQUEST_GERMINATION")


def test_a_single_failed_slot_is_left_to_its_embargo() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]), conservative_after_failures=2)
    _restore(controller, epochs_since_improvement=5, last_epoch=4, embargo_until={"net.3": 7})
    [response] = run_epochs(controller, SeedSimulator(), [0.6], start=5)
    assert not response.signal.conservative_mode
    assert commands_by_epoch([response]) == [["net.1:REQUEST_GERMINATION", "net.1:ADVANCE:LOADING"]]


def test_non_finite_loss_asks_for_an_emergency_rollback_and_decides_nothing_else() -> None:
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = SeedSimulator()
    run_epochs(controller, sim, PLATEAU)  # germinates net.1 at epoch 3
    sim.train_epoch()
    response = controller.step(sim.request(4, 0.6, loss=math.nan))
    assert not response.commands
    assert not response.field_reports
    assert response.signal.emergency_rollback_required
    assert response.signal.conservative_mode
    assert "non-finite metrics (training loss nan" in response.signal.reason
    assert any("emergency rollback" in reason for reason in _run_level(response))
    status = controller.get_status(tamiyo_pb2.GetStatusRequest(run_id=RUN))
    assert status.active_adaptations == 1  # its outcome comes when the seed is seen ROLLED_BACK


def test_infinite_accuracy_is_an_emergency_too() -> None:
    controller = make_controller(None)
    response = controller.step(SeedSimulator().request(0, math.inf))
    assert response.signal.emergency_rollback_required
