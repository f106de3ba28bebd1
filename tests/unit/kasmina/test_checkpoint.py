"""Operator checkpoints: resume reaches the same seed states and the same next steps; rollback locks hold."""

from __future__ import annotations

import io
from typing import Any

import torch

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.convert import snapshot_from_dict, snapshot_to_dict
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.records import Adaptation, SeedSnapshot
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import kasmina_pb2, lifecycle_pb2, telemetry_pb2
from tests.support.kasmina import (
    RUN_ID,
    bring_to,
    command,
    features_source,
    mlp_host,
    mlp_setup,
    template_ir,
    train_steps,
)

CONFIG = KasminaConfig(target_module_types=("ReLU",), ramp_steps=10, gradient_sample_every=2, embargo_epochs=4)


def _through_disk(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def _states(operator: KasminaOperator) -> list[kasmina_pb2.ListSeedStatesResponse]:
    return list(operator.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID)).seeds)


def _reports(reports: list[telemetry_pb2.SeedTelemetry]) -> list[telemetry_pb2.SeedTelemetry]:
    for report in reports:
        report.ClearField("report_time")
    return reports


def _fresh() -> tuple[torch.nn.Module, KasminaOperator]:
    model = wrap(mlp_host(seed=42), CONFIG, example_input=torch.randn(2, 8))
    return model, KasminaOperator(model, features_source(), CONFIG, run_id=RUN_ID)


def test_resume_reaches_the_same_seed_states_and_next_steps() -> None:
    model, operator, _, _ = mlp_setup(CONFIG)
    operator.apply_command(
        command(
            lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION,
            "1",
            command_id="germ",
            kernel_id="k-mlp",
            grafting_strategy=lifecycle_pb2.GRAFTING_STRATEGY_DRIFT_CONTROLLED,
        )
    )
    bring_to(operator, "1", lc.GRAFTING)
    bring_to(operator, "3", lc.TRAINING)
    train_steps(model, 3)
    operator.on_epoch_end(0, validation_score=0.4)
    operator.apply_command(command(lifecycle_pb2.COMMAND_TYPE_CULL, "3", command_id="cull"))

    state = _through_disk(operator.state_dict())
    resumed_model, resumed = _fresh()
    resumed.load_state_dict(state)

    assert _states(resumed) == _states(operator)
    x = torch.randn(16, 8)
    assert torch.equal(resumed_model(x), model(x))
    assert resumed_model.global_step == model.global_step and resumed_model.epoch == model.epoch
    # The next steps of both runs are the same: same ramp, same weights.
    train_steps(model, 4, seed=9)
    train_steps(resumed_model, 4, seed=9)
    assert resumed_model.seed("1").alpha == model.seed("1").alpha > 0
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed_model.state_dict().values(), strict=True)
    )
    assert _reports(resumed.on_epoch_end(1)) == _reports(operator.on_epoch_end(1))
    # Command memory came along: a replayed command id is not applied twice.
    replay = resumed.apply_command(command(lifecycle_pb2.COMMAND_TYPE_CULL, "3", command_id="cull"))
    assert replay.reason.startswith("already applied")


def test_rolled_back_seeds_stay_locked_through_a_restore() -> None:
    model, operator, _, _ = mlp_setup(CONFIG)
    bring_to(operator, "1", lc.TRAINING)
    good = _through_disk(operator.state_dict())
    bring_to(operator, "1", lc.GRAFTING)
    bring_to(operator, "3", lc.TRAINING)
    operator.drain_transitions()
    operator.roll_back(operator.active_seed_ids(), reason="loss exploded")
    assert {s.seed_id: s.stage for s in model.seed_list()} == {"1": lc.ROLLED_BACK, "3": lc.ROLLED_BACK}
    rolled_back = [(t.seed_id, t.from_stage, t.to_stage, t.reason) for t in operator.drain_transitions()]
    assert rolled_back == [
        ("1", lc.GRAFTING, lc.ROLLED_BACK, "loss exploded"),
        ("3", lc.TRAINING, lc.ROLLED_BACK, "loss exploded"),
    ]
    operator.load_state_dict(good)
    assert model.seed("1").stage == lc.ROLLED_BACK and model.seed("1").kernel is None
    assert model.seed("3").stage == lc.ROLLED_BACK
    assert [s.last_transition_reason for s in model.seed_list()] == ["loss exploded"] * 2
    assert operator.drain_transitions() == []


def test_restore_brings_back_a_seed_that_was_culled_after_the_checkpoint() -> None:
    model, operator, _, _ = mlp_setup(CONFIG)
    bring_to(operator, "1", lc.TRAINING)
    train_steps(model, 2)
    good = _through_disk(operator.state_dict())
    weights = [p.detach().clone() for p in model.seed("1").kernel_parameters()]
    operator.apply_command(command(lifecycle_pb2.COMMAND_TYPE_CULL, "1", command_id="cull"))
    version = model.version
    operator.load_state_dict(good)
    seed = model.seed("1")
    assert seed.stage == lc.TRAINING and seed.hooked and seed.embargo_until_epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(weights, seed.kernel_parameters(), strict=True))
    assert model.version != version


def test_snapshot_dict_round_trip() -> None:
    snapshot = SeedSnapshot(
        stage=lc.GRAFTING,
        alpha=0.3,
        ramp_step=3,
        ramp_loss_average=1.25,
        steps_in_stage=3,
        stage_entry_epoch=2,
        embargo_until_epoch=0,
        isolation_violations=1,
        last_transition_reason="advance to GRAFTING",
        last_command_id="c9",
        gradient_norm=0.5,
        adaptation=Adaptation(
            kernel_id="k",
            blueprint_id="bp",
            template_id="mlp_relu_e1",
            grafting_strategy=lifecycle_pb2.GRAFTING_STRATEGY_COSINE_RAMP,
            selected_for_tags=("fast", "small"),
            germination_command_id="g",
            germination_epoch=1,
            pre_metric=0.5,
            graft_epoch=2,
            fossilization_epoch=None,
            eval_gain=None,
            parameter_count=544,
            ir=template_ir("mlp_relu_e1", [16]),
        ),
    )
    assert snapshot_from_dict(_through_disk(snapshot_to_dict(snapshot))) == snapshot
    assert snapshot_from_dict(snapshot_to_dict(SeedSnapshot(stage=lc.DORMANT))) == SeedSnapshot(stage=lc.DORMANT)
