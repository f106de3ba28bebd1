"""Tolaria's loop with real Kasmina seeds and a real Tamiyo: growth, checkpoints, rollback, faults."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from esper.errors import Unavailable
from esper.kasmina import load_model, save_model
from esper.leyline.v1 import control_pb2, lifecycle_pb2, tamiyo_pb2
from esper.tolaria.config import RunConfig
from esper.tolaria.trainer import TolariaTrainer, TrainingFailed
from tests.support.kasmina import command
from tests.unit.tolaria.harness import (
    RUN_ID,
    TAMIYO,
    WIDTH,
    export_state,
    metrics_rows,
    notices,
    seed_stages,
    setup,
    spirals,
    transitions,
)

TERMINAL = ("->FOSSILIZED", "->CULLED")


def test_a_run_takes_a_seed_from_germination_to_a_terminal_stage() -> None:
    run = setup()
    trainer = run.trainer(epochs=12)
    model, history = trainer.train()
    seen = transitions(run.events)
    assert any(step.endswith("DORMANT->GERMINATED") for _, _, step in seen)
    assert any(step.endswith(TERMINAL) for _, _, step in seen)
    assert len(history.epochs) == 12
    assert all(record.hook is not None for record in history.epochs)
    kinds = {e.WhichOneof("payload") for e in run.events.events()}
    assert {"epoch_completed", "decision", "seed_transition", "field_report"} <= kinds
    assert [e.sequence for e in run.events.events()] == list(range(1, len(run.events.events()) + 1))
    assert sum(seed.isolation_violations for seed in model.seed_list()) == 0


def test_the_host_trains_identically_while_its_seeds_only_train(tmp_path: Path) -> None:
    # With seeds germinated but never grafted, the host follows exactly the static run's trajectory.
    class NeverGraft:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
            response: tamiyo_pb2.StepResponse = self.inner.step(request)  # type: ignore[attr-defined]
            keep = [c for c in response.commands if c.target_stage != lifecycle_pb2.SEED_STAGE_GRAFTING]
            del response.commands[:]
            response.commands.extend(keep)
            return response

    grown = setup()
    grown.controller = NeverGraft(grown.controller)
    grown_trainer = grown.trainer(epochs=6)
    grown_trainer.train()
    assert any("->TRAINING" in step for _, _, step in transitions(grown.events))
    static = setup()
    static_trainer = TolariaTrainer(
        static.model, None, RunConfig(epochs=6, batch_size=64, learning_rate=1e-2, seed=0), data=static.data
    )
    static_trainer.train()
    for key, value in static.model.host.state_dict().items():
        assert torch.equal(value, grown.model.host.state_dict()[key]), key


def test_checkpoint_then_resume_reaches_the_same_states_and_metrics(tmp_path: Path) -> None:
    full = setup()
    checkpoint = tmp_path / "last.pt"
    kept = tmp_path / "after-epoch-5.pt"
    trainer = full.trainer(epochs=10, checkpoint=checkpoint)
    trainer.on_epoch = lambda record, _: shutil.copy(checkpoint, kept) if record.metrics.epoch == 5 else None
    trainer.train()

    resumed = setup()
    second = resumed.trainer(epochs=10, checkpoint=tmp_path / "resumed.pt")
    assert second.resume(kept) == 6
    second.train()
    assert metrics_rows(second) == metrics_rows(trainer)[6:]
    assert seed_stages(resumed.model) == seed_stages(full.model)
    assert export_state(resumed.controller) == export_state(full.controller)
    assert any("resumed from" in text for text in notices(resumed.events))


def test_a_non_finite_epoch_is_rolled_back_and_the_run_goes_on() -> None:
    run = setup()
    trainer = run.trainer(epochs=8)
    poisoned = {"done": False}

    def poison(record: object, history: object) -> None:
        # Corrupt the host once, after epoch 4: epoch 5 then trains on NaN weights.
        if not poisoned["done"] and trainer.history.epochs[-1].metrics.epoch == 4:
            poisoned["done"] = True
            with torch.no_grad():
                next(run.model.host.parameters()).fill_(float("nan"))

    trainer.on_epoch = poison
    _, history = trainer.train()
    assert history.rollbacks == 1
    [record] = history.rollback_log
    assert (record.epoch, record.kind, record.reason) == (5, "divergence", "non-finite loss")
    # Epoch 5 is retried; the epochs between the restored checkpoint and it are trained again.
    discarded = record.epoch - record.to_epoch - 1
    assert [r.metrics.epoch for r in history.epochs] == list(range(8 + discarded))
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    texts = notices(run.events)
    assert any("non-finite loss" in text and "restored the" in text for text in texts)


def test_seeds_blending_in_at_a_rollback_are_locked_rolled_back() -> None:
    run = setup()
    trainer = run.trainer(epochs=10)
    state: dict[str, object] = {"poisoned": False}

    def poison_when_blending(record: object, history: object) -> None:
        if not state["poisoned"] and run.operator.blending_seed_ids():
            state["poisoned"] = True
            state["blending"] = set(run.operator.blending_seed_ids())
            with torch.no_grad():
                next(run.model.host.parameters()).fill_(float("inf"))

    trainer.on_epoch = poison_when_blending
    trainer.train()
    assert state["poisoned"]
    locked = [seed for _, seed, step in transitions(run.events) if step.endswith("->ROLLED_BACK")]
    assert locked and set(locked) <= state["blending"]  # type: ignore[operator]
    assert all(seed_stages(run.model)[seed] == lifecycle_pb2.SEED_STAGE_ROLLED_BACK for seed in locked)


def test_a_seed_only_training_at_a_rollback_goes_on_from_the_checkpoint() -> None:
    # A TRAINING seed's forward is the identity: it cannot have caused the failure.
    run = setup()
    trainer = run.trainer(epochs=6)
    state: dict[str, object] = {"poisoned": False}

    def poison_while_training(record: object, history: object) -> None:
        training = [seed.seed_id for seed in run.model.seed_list() if seed.stage == lifecycle_pb2.SEED_STAGE_TRAINING]
        if not state["poisoned"] and training and not run.operator.blending_seed_ids():
            state["poisoned"], state["training"] = True, training
            with torch.no_grad():
                next(run.model.host.parameters()).fill_(float("nan"))

    trainer.on_epoch = poison_while_training
    _, history = trainer.train()
    assert state["poisoned"] and history.rollbacks == 1
    assert history.rollback_log[0].locked_seeds == ()
    assert not any(step.endswith("->ROLLED_BACK") for _, _, step in transitions(run.events))
    for seed in state["training"]:  # type: ignore[attr-defined]
        assert seed_stages(run.model)[seed] != lifecycle_pb2.SEED_STAGE_ROLLED_BACK


def test_training_that_keeps_diverging_fails_after_the_rollback_budget() -> None:
    run = setup()
    trainer = run.trainer(epochs=6, max_rollbacks=1)

    def always_poison(record: object, history: object) -> None:
        with torch.no_grad():
            next(run.model.host.parameters()).fill_(float("nan"))

    trainer.on_epoch = always_poison
    with pytest.raises(TrainingFailed, match="gave up after 1 rollbacks"):
        trainer.train()


def test_a_run_whose_tamiyo_is_down_throughout_trains_without_adapting() -> None:
    class Down:
        def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
            raise Unavailable("connection refused")

        def export_controller_state(self, request: object) -> object:
            raise Unavailable("connection refused")

        def restore_controller_state(self, request: object) -> object:
            raise Unavailable("connection refused")

    run = setup(controller=Down())
    _, history = run.trainer(epochs=3).train()
    assert len(history.epochs) == 3
    assert all(record.hook is not None and not record.hook.applied for record in history.epochs)
    texts = notices(run.events)
    assert sum("Tamiyo unavailable (UNAVAILABLE)" in t for t in texts) == 3
    assert any("Tamiyo unavailable for the checkpoint" in t for t in texts)
    assert set(seed_stages(run.model).values()) == {lifecycle_pb2.SEED_STAGE_DORMANT}


def test_tamiyo_unavailable_at_a_boundary_is_survived(monkeypatch: pytest.MonkeyPatch) -> None:
    run = setup()
    real_step = run.controller.step
    calls = {"n": 0}

    def flaky(request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise Unavailable("tamiyo restarting")
        return real_step(request)

    monkeypatch.setattr(run.controller, "step", flaky)
    _, history = run.trainer(epochs=5).train()
    assert len(history.epochs) == 5
    texts = notices(run.events)
    assert sum("Tamiyo unavailable" in t and "running conservatively" in t for t in texts) == 2
    assert history.epochs[1].hook is not None and not history.epochs[1].hook.applied


def test_an_illegal_command_is_refused_logged_and_the_run_goes_on() -> None:
    class Reckless:
        def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
            command = control_pb2.AdaptationCommand(
                command_id=f"c{request.packet.epoch}",
                run_id=RUN_ID,
                seed_id="act1",
                command_type=lifecycle_pb2.COMMAND_TYPE_FOSSILIZE,
                reason="no reason at all",
            )
            return tamiyo_pb2.StepResponse(commands=[command])

        def export_controller_state(self, request: object) -> tamiyo_pb2.ExportControllerStateResponse:
            return tamiyo_pb2.ExportControllerStateResponse(state=tamiyo_pb2.TamiyoControllerState(run_id=RUN_ID))

        def restore_controller_state(self, request: object) -> None:
            return None

    run = setup(controller=Reckless())
    _, history = run.trainer(epochs=3).train()
    assert len(history.epochs) == 3
    refused = [t for t in notices(run.events) if "refused" in t]
    assert len(refused) == 3 and "ILLEGAL_TRANSITION" in refused[0]
    assert set(seed_stages(run.model).values()) == {lifecycle_pb2.SEED_STAGE_DORMANT}


def test_test_accuracy_is_that_of_the_saved_model(tmp_path: Path) -> None:
    run = setup()
    trainer = run.trainer(epochs=4)  # too short for any seed to finish
    trainer.train()
    assert trainer.in_flight_seed_ids()
    save_model(run.model, tmp_path)
    reloaded = load_model(tmp_path).eval()
    with torch.no_grad():
        correct = (reloaded(run.data.x_test).argmax(1) == run.data.y_test).sum().item()
    assert trainer.test_accuracy().metric == correct / len(run.data.y_test)


def test_a_plain_module_trains_as_a_static_baseline() -> None:
    data = spirals()
    torch.manual_seed(0)
    host = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    trainer = TolariaTrainer(host, None, RunConfig(epochs=5, learning_rate=1e-2), data=data)
    _, history = trainer.train()
    assert len(history.epochs) == 5
    assert history.epochs[-1].metrics.train_loss < history.epochs[0].metrics.train_loss
    assert all(record.hook is None for record in history.epochs)


def test_a_validation_loss_far_above_its_tiny_best_is_not_divergence() -> None:
    run = setup()
    trainer = run.trainer(epochs=3)
    from esper.tolaria.loop import EpochStats

    for loss in (0.01, 0.008, 0.012):  # a long run that fit well
        trainer._losses.record(loss, loss)
    _blending_in(trainer)
    fine = EpochStats(loss=0.1, metric=0.9, steps=10, finite=True)
    assert trainer._failure(fine, fine) == ""
    exploded = EpochStats(loss=5.0, metric=0.1, steps=10, finite=True)
    assert "diverged" in trainer._failure(fine, exploded)


def test_a_jump_from_the_recent_losses_is_divergence_whatever_the_first_loss() -> None:
    # The failure the old rule missed: 0.60 -> 4.31, after a first loss of 2.3.
    run = setup()
    trainer = run.trainer(epochs=3)
    from esper.tolaria.loop import EpochStats

    for loss in (2.3, 1.1, 0.7, 0.62, 0.60):
        trainer._losses.record(loss, loss)
    _blending_in(trainer)
    before = EpochStats(loss=0.6, metric=0.8, steps=10, finite=True)
    jumped = EpochStats(loss=4.31, metric=0.1, steps=10, finite=True)
    assert trainer._failure(before, before) == ""
    assert "validation loss 4.310 diverged" in trainer._failure(before, jumped)
    assert "training loss 4.310 diverged" in trainer._failure(jumped, before)


def test_without_a_graft_in_flight_only_a_non_finite_loss_is_a_failure() -> None:
    # Nothing to blame and nothing a rollback would change: the static twin trains the same
    # way, and going back would replay the same epoch into the same jump until the run gave up.
    run = setup()
    trainer = run.trainer(epochs=3)
    from esper.tolaria.loop import EpochStats

    for loss in (0.6, 0.62, 0.60):
        trainer._losses.record(loss, loss)
    before = EpochStats(loss=0.6, metric=0.8, steps=10, finite=True)
    jumped = EpochStats(loss=4.31, metric=0.1, steps=10, finite=True)
    assert trainer._failure(jumped, jumped) == ""
    broken = EpochStats(loss=float("nan"), metric=0.1, steps=10, finite=False)
    assert trainer._failure(before, broken) == "non-finite loss"


def _blending_in(trainer: TolariaTrainer) -> None:
    """A seed blending in, with the checkpoint taken before its graft (what a divergence is blamed on)."""
    from esper.tolaria.safety import GraftCheckpoint

    trainer._grafts.by_seed["net.3"] = GraftCheckpoint(0, 0.5, {})


WIDEN = dataclasses.replace(TAMIYO, width_below_units=64, growth_step_fraction=4.0, min_gain_per_kparam=0.0)


def test_width_growth_merges_into_the_host_and_a_resume_across_it_matches(tmp_path: Path) -> None:
    full = setup(tamiyo=WIDEN, widen=True)
    checkpoint = tmp_path / "last.pt"
    kept = tmp_path / "after-epoch-3.pt"
    trainer = full.trainer(epochs=12, checkpoint=checkpoint)
    trainer.on_epoch = lambda record, _: shutil.copy(checkpoint, kept) if record.metrics.epoch == 3 else None
    trainer.train()
    merged = [seed.seed_id for seed in full.model.seed_list() if seed.merged]
    assert merged, transitions(full.events)
    # The host grew: its first or second hidden layer has more than 16 units, and its optimizer follows.
    assert max(full.model.host.fc1.out_features, full.model.host.fc2.out_features) > WIDTH
    assert {id(p) for p in trainer.optimizers.host.param_groups[0]["params"]} == {
        id(p) for p in full.model.host.parameters()
    }

    resumed = setup(tamiyo=WIDEN, widen=True)
    second = resumed.trainer(epochs=12, checkpoint=tmp_path / "resumed.pt")
    assert second.resume(kept) == 4
    second.train()
    assert metrics_rows(second) == metrics_rows(trainer)[4:]
    assert seed_stages(resumed.model) == seed_stages(full.model)
    for key, value in full.model.host.state_dict().items():
        assert torch.equal(value, resumed.model.host.state_dict()[key]), key


def test_the_host_optimizer_carries_its_state_into_grown_layers() -> None:
    from esper.tolaria.optimizers import OptimizerSet, adam_factory

    run = setup(widen=True)
    model = run.model
    optimizers = OptimizerSet(model, adam_factory(1e-2, 0.0), adam_factory(1e-2, 0.0))
    x, y = run.data.x_train[:64], run.data.y_train[:64]
    nn.functional.cross_entropy(model(x), y).backward()
    optimizers.step()
    old = optimizers.host.state[model.host.fc1.weight]["exp_avg"].clone()
    S = lifecycle_pb2
    steps = [(S.COMMAND_TYPE_REQUEST_GERMINATION, 0)] + [
        (S.COMMAND_TYPE_ADVANCE, stage)
        for stage in (S.SEED_STAGE_LOADING, S.SEED_STAGE_GRAFTING, S.SEED_STAGE_STABILIZATION, S.SEED_STAGE_EVALUATING)
    ]
    for index, (kind, stage) in enumerate([*steps, (S.COMMAND_TYPE_FOSSILIZE, 0)]):
        run.operator.apply_command(
            command(kind, "w:fc1", command_id=f"c{index}", kernel_id="k-w1", target_stage=stage, run_id=RUN_ID)
        )
    assert model.seed("w:fc1").merged
    assert optimizers.sync()
    grown = optimizers.host.state[model.host.fc1.weight]["exp_avg"]
    assert grown.shape == (WIDTH + 4, 2)
    assert torch.equal(grown[:WIDTH], old) and not grown[WIDTH:].any()


def test_the_boundary_tells_tamiyo_the_run_s_kind_of_device() -> None:
    seen: list[str] = []
    run = setup()

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
            seen.append(request.device_kind)
            response: tamiyo_pb2.StepResponse = self.inner.step(request)
            return response

    run.controller = Recording(run.controller)
    run.trainer(epochs=2).train()
    assert seen == ["cpu"] * 2
