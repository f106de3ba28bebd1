"""Never worse than static: harmful kernels, rollbacks that restore exactly, the best state kept.

The harmful kernels are real artifacts (exported and loaded as Tezzeret's FAST kernels
are): one flips the sign of the activation, one returns large noise. Both have no
parameters, so they graft straight after loading. Tamiyo starts growing once the
host has learned (warm-up), as on a plateau.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from esper.kasmina.kernel_cache import private_copy
from esper.leyline.v1 import kernel_pb2, lifecycle_pb2
from esper.tamiyo import TamiyoController
from esper.tamiyo.config import TamiyoConfig
from esper.tezzeret.artifacts import load_kernel_module
from esper.tolaria.config import RunConfig
from esper.tolaria.trainer import EpochRecord, TolariaTrainer, TrainingHistory
from tests.support.kasmina import FakeKernelSource, template_ir
from tests.support.kernels import harmful_artifact
from tests.support.tamiyo import FakeKernels
from tests.unit.tolaria.harness import RUN_ID, WIDTH, Setup, kernel_artifact, notices, setup, transitions

EPOCHS = 20
# Growth starts once the host has learned: harm is then a drop the gates can see.
GROWING = TamiyoConfig(
    warmup_epochs=8,
    patience=1,
    min_delta=0.5,
    max_concurrent_seeds=2,
    min_training_epochs=1,
    fine_tune_epochs=1,
    min_epochs_to_finish=1,
)
# "Within noise": the static twin's test accuracy moves by several points from seed to
# seed on this data; a run restored to before every harmful graft should match it.
NOISE = 0.01


def _run_config() -> RunConfig:
    return RunConfig(epochs=EPOCHS, batch_size=64, learning_rate=1e-2, seed=0)


def _harmful_run(kind: str) -> Setup:
    program = load_kernel_module(harmful_artifact(kind, WIDTH), kernel_pb2.COMPILATION_PIPELINE_FAST)
    run = setup()
    run.operator._kernels = FakeKernelSource(factories={"k-harm": lambda: private_copy(program)})
    artifact = kernel_artifact("k-harm", template_ir("mlp_relu_e1", [WIDTH]), 0)
    run.controller = TamiyoController(run.model, GROWING, kernels=FakeKernels([artifact]))
    return run


@pytest.fixture(scope="module")
def static_accuracy() -> float:
    static = setup()
    trainer = TolariaTrainer(static.model, None, _run_config(), data=static.data)
    trainer.train()
    return trainer.test_accuracy().metric


class _HostRecorder:
    """Host weights and the host optimizer's state at the end of every epoch (after any rollback)."""

    def __init__(self, run: Setup, trainer: TolariaTrainer) -> None:
        self.run, self.trainer = run, trainer
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.optimizer: dict[int, dict[str, Any]] = {}

    def __call__(self, record: EpochRecord, history: TrainingHistory) -> None:
        epoch = record.metrics.epoch
        self.weights[epoch] = {k: v.detach().clone() for k, v in self.run.model.host.state_dict().items()}
        state = self.trainer.optimizers.host.state_dict()["state"]
        self.optimizer[epoch] = {i: {k: v.clone() for k, v in s.items()} for i, s in state.items()}


def _same(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(_same(a[k], b[k]) if isinstance(a[k], dict) else torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["sign_flip", "noise"])
def test_a_harmful_graft_is_rolled_back_exactly_and_the_run_ends_with_its_static_twin(
    kind: str, static_accuracy: float
) -> None:
    # Divergence detection off: the cull at EVALUATING and the graft rollback do the work.
    run = _harmful_run(kind)
    trainer = run.trainer(EPOCHS, divergence_factor=1e6)
    recorder = _HostRecorder(run, trainer)
    trainer.on_epoch = recorder
    _, history = trainer.train()

    grafts = [record for record in history.rollback_log if record.kind == "graft"]
    assert grafts, "the harmful graft was never rolled back"
    for record in grafts:
        # Host and host optimizer are exactly what they were when the graft began.
        assert _same(recorder.weights[record.epoch], recorder.weights[record.to_epoch])
        assert _same(recorder.optimizer[record.epoch], recorder.optimizer[record.to_epoch])
        assert record.locked_seeds and "culled after grafting" in record.reason
    stages = {seed.seed_id: seed.stage for seed in run.model.seed_list()}
    assert lifecycle_pb2.SEED_STAGE_FOSSILIZED not in stages.values()
    assert any(step.endswith("->ROLLED_BACK") for _, _, step in transitions(run.events))
    assert any("culled after grafting" in text and "restored the checkpoint" in text for text in notices(run.events))
    # The discarded epochs were trained again: the host got as many kept epochs as its twin.
    assert len(history.epochs) > EPOCHS
    assert abs(trainer.test_accuracy().metric - static_accuracy) <= NOISE


def test_a_loss_jump_from_a_harmful_graft_is_caught_at_once_and_the_run_ends_with_its_static_twin(
    static_accuracy: float,
) -> None:
    run = _harmful_run("noise")
    trainer = run.trainer(EPOCHS)
    _, history = trainer.train()
    divergences = [record for record in history.rollback_log if record.kind == "divergence"]
    assert divergences
    first = divergences[0]
    # Caught in the very epoch the noise blended in; back to before its graft.
    graft_epoch = next(
        epoch
        for epoch, seed, step in transitions(run.events)
        if step.endswith("->GRAFTING") and seed in first.locked_seeds
    )
    assert first.epoch == graft_epoch + 1 and first.to_epoch == graft_epoch
    assert "diverged" in first.reason
    assert abs(trainer.test_accuracy().metric - static_accuracy) <= NOISE


def _spoil_after_last_epoch(run: Setup, trainer: TolariaTrainer) -> None:
    def spoil(record: EpochRecord, history: TrainingHistory) -> None:
        if record.metrics.epoch == trainer.run.epochs - 1:
            with torch.no_grad():
                run.model.host.classifier.weight.mul_(-1.0)  # after validation: no rollback sees it

    trainer.on_epoch = spoil


def test_a_run_whose_final_state_is_worse_ends_with_its_best_validated_state() -> None:
    run = setup(controller=_NoGrowth())
    trainer = run.trainer(6)
    _spoil_after_last_epoch(run, trainer)
    _, history = trainer.train()
    saved = history.saved
    # The spoiled weights came after epoch 5's validation: epoch 5 is the best, and what the run ends with.
    assert saved is not None and saved.epoch == 5
    assert saved.val_metric > saved.final_val_metric + 0.3
    assert "ends with that best state" in saved.reason
    from esper.tolaria.loop import evaluate

    assert evaluate(run.model, run.data.x_val, run.data.y_val).metric == pytest.approx(saved.val_metric)
    assert any("ends with that best state" in text for text in notices(run.events))


def test_without_keep_best_state_the_final_state_stays() -> None:
    run = setup(controller=_NoGrowth())
    trainer = run.trainer(6, keep_best_state=False)
    _spoil_after_last_epoch(run, trainer)
    _, history = trainer.train()
    assert history.saved is not None and history.saved.epoch == 5
    assert history.saved.reason == "keep_best_state is off"


class _NoGrowth:
    """A controller that never adapts (and has no state to checkpoint)."""

    def step(self, request: Any) -> Any:
        from esper.leyline.v1 import tamiyo_pb2

        return tamiyo_pb2.StepResponse()

    def export_controller_state(self, request: Any) -> Any:
        from esper.leyline.v1 import tamiyo_pb2

        return tamiyo_pb2.ExportControllerStateResponse(state=tamiyo_pb2.TamiyoControllerState(run_id=RUN_ID))

    def restore_controller_state(self, request: Any) -> None:
        return None


_NEXT = {  # stage -> (command, target stage) that moves a seed on along the main path
    lifecycle_pb2.SEED_STAGE_DORMANT: (lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION, 0),
    lifecycle_pb2.SEED_STAGE_GERMINATED: (lifecycle_pb2.COMMAND_TYPE_ADVANCE, lifecycle_pb2.SEED_STAGE_LOADING),
    lifecycle_pb2.SEED_STAGE_TRAINING: (lifecycle_pb2.COMMAND_TYPE_ADVANCE, lifecycle_pb2.SEED_STAGE_GRAFTING),
    lifecycle_pb2.SEED_STAGE_GRAFTING: (lifecycle_pb2.COMMAND_TYPE_ADVANCE, lifecycle_pb2.SEED_STAGE_STABILIZATION),
}


def bring_to(operator: Any, seed_id: str, stage: int, kernel_id: str) -> None:
    """Command a seed on (germinate, load to TRAINING, graft, stabilize) until it is at `stage`."""
    from tests.support.kasmina import command

    seed = operator.model.seed(seed_id)
    while seed.stage != stage:
        kind, target = _NEXT[seed.stage]
        operator.apply_command(
            command(
                kind,
                seed_id,
                command_id=f"{seed_id}-{seed.stage}-{seed.version}",
                kernel_id=kernel_id if target == 0 else "",
                target_stage=target,
                run_id=RUN_ID,
            )
        )


def test_a_graft_rollback_locks_the_culled_seed_and_the_others_go_on_from_the_checkpoint() -> None:
    run = setup()
    trainer = run.trainer(4)
    bring_to(run.operator, "act1", lifecycle_pb2.SEED_STAGE_GRAFTING, "k-mlp")
    bring_to(run.operator, "act2", lifecycle_pb2.SEED_STAGE_TRAINING, "k-mlp")
    checkpoint = trainer._checkpoint_state(3)
    # Later both have moved on; act1 is culled and the run goes back to before its graft.
    bring_to(run.operator, "act2", lifecycle_pb2.SEED_STAGE_STABILIZATION, "k-mlp")
    locked = trainer._restore_and_lock(checkpoint, 7, "graft rollback at epoch 7: test", culprits=["act1"])
    assert locked == ["act1"]
    stages = {seed.seed_id: seed.stage for seed in run.model.seed_list()}
    assert stages["act1"] == lifecycle_pb2.SEED_STAGE_ROLLED_BACK
    assert stages["act2"] == lifecycle_pb2.SEED_STAGE_TRAINING  # back where it was, adapting on
    # A divergence does not know its culprit: every seed blending in is locked; TRAINING ones go on.
    bring_to(run.operator, "act2", lifecycle_pb2.SEED_STAGE_GRAFTING, "k-mlp")
    assert trainer._restore_and_lock(trainer._checkpoint_state(8), 9, "emergency rollback: test") == ["act2"]
