"""The never-worse bookkeeping: divergence against recent epochs, graft checkpoints, the best state."""

from __future__ import annotations

from esper.tolaria.checkpoint import snapshot
from esper.tolaria.safety import BestState, GraftCheckpoint, GraftCheckpoints, LossHistory, RollbackRecord


def test_divergence_is_judged_against_the_median_of_the_last_epochs() -> None:
    losses = LossHistory(window=3, factor=3.0, min_loss=0.1)
    assert losses.judge(50.0, 50.0) == ""  # nothing to judge against yet
    for value in (2.3, 0.62, 0.60, 0.61):
        losses.record(value, value)
    assert losses.val == [0.62, 0.60, 0.61]  # only the window is kept
    assert losses.judge(0.61, 1.8) == ""
    reason = losses.judge(0.61, 4.31)
    assert reason.startswith("validation loss 4.310 diverged") and "median 0.610 of the last 3 epochs" in reason
    assert losses.judge(4.31, 0.61).startswith("training loss 4.310 diverged")


def test_a_validation_loss_jump_with_the_metric_held_is_overfitting_not_divergence() -> None:
    losses = LossHistory(window=3, factor=3.0, min_loss=0.1)
    for value in (0.07, 0.068, 0.066):
        losses.record(value, value)
    assert losses.judge(0.06, 0.373, metric_held=True) == ""
    assert "validation loss 0.373 diverged" in losses.judge(0.06, 0.373, metric_held=False)
    assert "training loss 0.373 diverged" in losses.judge(0.373, 0.06, metric_held=True)


def test_tiny_losses_are_judged_against_the_floor() -> None:
    losses = LossHistory(window=3, factor=3.0, min_loss=0.1)
    for value in (0.01, 0.012, 0.009):
        losses.record(value, value)
    assert losses.judge(0.01, 0.25) == ""  # 25 x the median, but below 3 x the 0.1 floor
    assert "diverged" in losses.judge(0.01, 0.31)


def test_loss_history_survives_a_checkpoint() -> None:
    losses = LossHistory(window=2, factor=3.0, min_loss=0.1)
    losses.record(1.0, 2.0)
    losses.record(0.5, 1.5)
    again = LossHistory(window=2, factor=3.0, min_loss=0.1)
    again.load_state_dict(snapshot(losses.state_dict()))
    assert (again.train, again.val) == ([1.0, 0.5], [2.0, 1.5])


def test_the_earliest_graft_checkpoint_predates_the_others() -> None:
    grafts = GraftCheckpoints()
    grafts.by_seed = {
        "act2": GraftCheckpoint(9, 0.80, {"epoch": 9}),
        "act1": GraftCheckpoint(6, 0.75, {"epoch": 6}),
        "act3": GraftCheckpoint(12, 0.85, {"epoch": 12}),
    }
    assert grafts.earliest() == ("act1", grafts.by_seed["act1"])
    assert grafts.earliest(["act2", "act3"]) == ("act2", grafts.by_seed["act2"])
    assert grafts.earliest(["gone"]) is None
    grafts.keep_only({"act3"})
    assert list(grafts.by_seed) == ["act3"]
    copied = GraftCheckpoints()
    copied.load_state_dict(snapshot(grafts.state_dict()))
    assert copied.by_seed["act3"].epoch == 12 and copied.by_seed["act3"].state == {"epoch": 12}


def test_the_best_state_moves_only_on_a_strict_improvement() -> None:
    best = BestState()
    assert best.improves(0.0, 5.0)
    best = BestState(3, 0.9, {"k": 1}, loss=0.30)
    assert not best.improves(0.9, 0.30) and best.improves(0.9001, 0.50)
    assert not best.improves(0.8999, 0.01)


def test_a_tie_in_the_score_goes_to_the_lower_validation_loss() -> None:
    """A saturated validation accuracy (100 % at several epochs) is told apart by the loss."""
    best = BestState(3, 1.0, {"k": 1}, loss=0.30)
    assert best.improves(1.0, 0.12) and not best.improves(1.0, 0.31)
    assert best.beats(1.0, 0.31) and not best.beats(1.0, 0.12) and not best.beats(1.0, 0.30)
    copied = BestState()
    copied.load_state_dict(snapshot(best.state_dict()))
    assert (copied.epoch, copied.score, copied.loss) == (3, 1.0, 0.30)


def test_a_rollback_record_round_trips_through_plain_data() -> None:
    record = RollbackRecord(12, "graft", 9, "act1 culled after grafting", ("act1", "act2"))
    assert RollbackRecord.from_dict(record.to_dict()) == record
    assert record.to_dict()["locked_seeds"] == ["act1", "act2"]
