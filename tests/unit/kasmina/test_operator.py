"""KasminaOperator: command validation, idempotency, loading, outcomes, listing, telemetry streams."""

from __future__ import annotations

import threading

import pytest
import torch

from esper.errors import AlreadyExists, DataLoss, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.leyline.v1 import kasmina_pb2, lifecycle_pb2
from tests.support.kasmina import (
    RUN_ID,
    FakeKernelSource,
    advance,
    bring_to,
    command,
    features_source,
    germinate,
    mlp_setup,
    train_steps,
)

CMD = lifecycle_pb2.CommandType
RELU = KasminaConfig(target_module_types=("ReLU",), embargo_epochs=2)


def _field(error: InvalidArgument) -> str:
    return error.violations[0].field


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (kasmina_pb2.ApplyCommandRequest(), "command"),
        (command(CMD.COMMAND_TYPE_CULL, command_id=""), "command.command_id"),
        (command(CMD.COMMAND_TYPE_CULL, command_id="c", run_id=""), "command.run_id"),
        (command(CMD.COMMAND_TYPE_CULL, "", command_id="c"), "command.seed_id"),
        (command(CMD.COMMAND_TYPE_UNSPECIFIED, command_id="c"), "command.command_type"),
        (command(CMD.COMMAND_TYPE_REQUEST_GERMINATION, command_id="c"), "command.kernel_id"),
        (command(CMD.COMMAND_TYPE_ADVANCE, command_id="c"), "command.target_stage"),
        (command(CMD.COMMAND_TYPE_ADVANCE, command_id="c", target_stage=99), "command.target_stage"),
        (command(CMD.COMMAND_TYPE_ADVANCE, command_id="c", target_stage=lc.GERMINATED), "command.kernel_id"),
        (command(CMD.COMMAND_TYPE_CULL, command_id="c", grafting_strategy=42), "command.grafting_strategy"),
    ],
)
def test_invalid_commands_name_the_field(request_: kasmina_pb2.ApplyCommandRequest, field: str) -> None:
    _, operator, _, _ = mlp_setup(RELU)
    with pytest.raises(InvalidArgument) as caught:
        operator.apply_command(request_)
    assert _field(caught.value) == field
    assert operator.drain_transitions() == []


def test_unknown_run_and_seed_are_not_found() -> None:
    _, operator, _, _ = mlp_setup(RELU)
    with pytest.raises(NotFound) as caught:
        operator.apply_command(command(CMD.COMMAND_TYPE_CULL, command_id="c", run_id="other"))
    assert caught.value.reason == "RUN_NOT_FOUND"
    with pytest.raises(NotFound) as caught:
        operator.apply_command(command(CMD.COMMAND_TYPE_CULL, "nope", command_id="c"))
    assert caught.value.reason == "SEED_NOT_FOUND"


def test_illegal_command_is_refused_naming_both_stages_and_changes_nothing() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    with pytest.raises(FailedPrecondition) as caught:
        operator.apply_command(command(CMD.COMMAND_TYPE_FOSSILIZE, command_id="c"))
    assert caught.value.reason == "ILLEGAL_TRANSITION"
    assert "DORMANT" in caught.value.message and "FOSSILIZED" in caught.value.message
    assert model.seed("1").stage == lc.DORMANT and operator.drain_transitions() == []
    # A refused command id is not remembered: it can be sent again once legal.
    bring_to(operator, "1", lc.EVALUATING)
    assert operator.apply_command(command(CMD.COMMAND_TYPE_FOSSILIZE, command_id="c")).stage == lc.FOSSILIZED


def test_commands_are_idempotent_by_command_id() -> None:
    model, operator, source, _ = mlp_setup(RELU)
    germinate(operator, "1", "k-mlp")
    first = advance(operator, "1", lc.LOADING, "load")
    transitions = operator.drain_transitions()
    again = advance(operator, "1", lc.LOADING, "load")
    assert again.accepted and again.stage == first.stage == lc.TRAINING
    assert again.reason.startswith("already applied")
    assert operator.drain_transitions() == [] and source.instantiated == ["k-mlp"]
    assert len(transitions) == 3
    with pytest.raises(AlreadyExists):
        advance(operator, "1", lc.GRAFTING, "load")
    assert model.seed("1").stage == lc.TRAINING


@pytest.mark.parametrize(
    "error",
    [
        NotFound("no kernel k-mlp", reason="KERNEL_NOT_FOUND"),
        DataLoss("checksum mismatch"),
        Unavailable("urza is down"),
        RuntimeError("torch.export.load exploded"),
    ],
)
def test_load_failure_culls_the_seed_with_the_reason_and_the_run_goes_on(error: Exception) -> None:
    source = features_source()
    source.errors["k-broken"] = error
    model, operator, _, _ = mlp_setup(RELU, source)
    germinate(operator, "1", "k-broken")
    response = advance(operator, "1", lc.LOADING, "load")
    assert response.accepted and response.stage == lc.CULLED
    seed = model.seed("1")
    assert str(error) in seed.last_transition_reason and seed.embargo_until_epoch == 2
    transitions = operator.drain_transitions()
    stages = [(t.from_stage, t.to_stage) for t in transitions]
    assert stages == [(lc.DORMANT, lc.GERMINATED), (lc.GERMINATED, lc.LOADING), (lc.LOADING, lc.CULLED)]
    culled = transitions[-1]
    assert str(error) in culled.reason and culled.command_id == "load"
    bring_to(operator, "3", lc.TRAINING)  # another seed is unaffected
    train_steps(model, 2)


def test_kernel_of_the_wrong_shape_is_culled_at_load() -> None:
    source = FakeKernelSource(factories={"k-wide": lambda: torch.nn.Linear(16, 32)})
    model, operator, _, _ = mlp_setup(RELU, source)
    germinate(operator, "1", "k-wide")
    assert advance(operator, "1", lc.LOADING, "load").stage == lc.CULLED
    assert "same shape" in model.seed("1").last_transition_reason


def test_full_adaptation_yields_transitions_and_its_adaptation_record() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    operator.on_epoch_end(0, validation_score=0.5)
    operator.apply_command(command(CMD.COMMAND_TYPE_REQUEST_GERMINATION, "1", command_id="germ", kernel_id="k-mlp"))
    bring_to(operator, "1", lc.EVALUATING)
    operator.on_epoch_end(1, validation_score=0.6)
    operator.record_eval_gain("1", 0.03)
    bring_to(operator, "1", lc.FINE_TUNING)
    operator.on_epoch_end(2, validation_score=0.7)
    operator.apply_command(command(CMD.COMMAND_TYPE_FOSSILIZE, "1", command_id="fossil"))
    transitions = operator.drain_transitions()
    path = [lc.stage_name(t.to_stage) for t in transitions]
    assert path == [
        "GERMINATED",
        "LOADING",
        "TRAINING",
        "GRAFTING",
        "STABILIZATION",
        "EVALUATING",
        "FINE_TUNING",
        "FOSSILIZED",
        "DORMANT",  # the site's child seed, born dormant
    ]
    germinated, fossilized, child = transitions[0], transitions[-2], transitions[-1]
    assert (child.seed_id, child.from_stage, child.command_id) == (
        "1/2",
        lc.Stage.Value("SEED_STAGE_UNSPECIFIED"),
        "fossil",
    )
    assert "CHILD_OF 1" in child.reason
    assert (germinated.command_id, germinated.epoch) == ("germ", 0)
    assert (fossilized.from_stage, fossilized.command_id, fossilized.epoch) == (lc.FINE_TUNING, "fossil", 2)
    adaptation = model.seed("1").adaptation
    assert adaptation is not None
    assert adaptation.pre_metric == 0.5
    assert adaptation.germination_epoch == 0 and adaptation.germination_command_id == "germ"
    assert adaptation.kernel_id == "k-mlp" and adaptation.blueprint_id == "bp-k-mlp"
    assert adaptation.eval_gain == pytest.approx(0.03)
    assert adaptation.parameter_count == 16 * 16 * 2 + 16 * 2
    assert adaptation.fossilization_epoch == 2


def test_cancel_returns_to_dormant_at_the_next_boundary_without_embargo() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    bring_to(operator, "1", lc.TRAINING)
    operator.apply_command(command(CMD.COMMAND_TYPE_CANCEL_GERMINATION, "1", command_id="cancel"))
    seed = model.seed("1")
    assert seed.stage == lc.CANCELLED and seed.kernel is None
    [telemetry, _] = operator.on_epoch_end(0)
    assert seed.stage == lc.DORMANT and telemetry.stage == lc.DORMANT and telemetry.kernel_id == ""
    assert seed.embargo_until_epoch == 0
    germinate(operator, "1", "k-mlp", tag="second")
    ends = [(t.from_stage, t.to_stage, t.command_id, t.epoch) for t in operator.drain_transitions()][-3:]
    assert ends == [
        (lc.TRAINING, lc.CANCELLED, "cancel", 0),
        (lc.CANCELLED, lc.DORMANT, "", 0),
        (lc.DORMANT, lc.GERMINATED, "second-germ", 0),
    ]


def test_emergency_rollback_locks_the_seed() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    bring_to(operator, "1", lc.GRAFTING)
    assert operator.active_seed_ids() == ["1"]
    operator.apply_command(command(CMD.COMMAND_TYPE_EMERGENCY_ROLLBACK, "1", command_id="rb"))
    seed = model.seed("1")
    assert seed.stage == lc.ROLLED_BACK and not seed.hooked and seed.kernel is None
    operator.on_epoch_end(0)
    assert seed.stage == lc.ROLLED_BACK
    with pytest.raises(FailedPrecondition):
        germinate(operator, "1", "k-mlp", tag="after")
    rolled_back = operator.drain_transitions()[-1]
    assert (rolled_back.from_stage, rolled_back.to_stage, rolled_back.command_id) == (
        lc.GRAFTING,
        lc.ROLLED_BACK,
        "rb",
    )


def test_list_seed_states_pages_in_layout_order() -> None:
    _, operator, _, _ = mlp_setup(RELU)
    bring_to(operator, "3", lc.TRAINING)
    first = operator.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID, page_size=1))
    assert [s.descriptor.seed_id for s in first.seeds] == ["1"] and first.next_page_token
    second = operator.list_seed_states(
        kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID, page_size=1, page_token=first.next_page_token)
    )
    [state] = second.seeds
    assert state.descriptor.seed_id == "3" and state.stage == lc.TRAINING and not second.next_page_token
    assert state.kernel_id == "k-mlp" and state.parameter_count == 544 and state.last_command_id
    with pytest.raises(InvalidArgument) as caught:
        operator.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID, page_token="garbage"))
    assert caught.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument):
        operator.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID, page_size=-1))


def test_telemetry_streams_as_epochs_end_until_the_run_ends() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    everything = operator.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID))
    only_three = operator.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID, seed_ids=["3"]))
    with pytest.raises(NotFound):
        operator.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID, seed_ids=["9"]))
    received: list[kasmina_pb2.StreamTelemetryResponse] = []
    reader = threading.Thread(target=lambda: received.extend(everything))
    reader.start()
    for epoch in range(2):
        with model.collecting_telemetry(), torch.no_grad():
            model(torch.randn(32, 8))
        operator.on_epoch_end(epoch)
    operator.close()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert [(r.telemetry.epoch, r.telemetry.seed_id) for r in received] == [
        (0, "1"),
        (0, "3"),
        (1, "1"),
        (1, "3"),
    ]
    assert [r.telemetry.seed_id for r in only_three] == ["3", "3"]
    assert all(r.telemetry.run_id == RUN_ID for r in received)


def test_closing_a_stream_ends_it_for_a_waiting_reader() -> None:
    _, operator, _, _ = mlp_setup(RELU)
    stream = operator.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id=RUN_ID))
    done = threading.Event()
    reader = threading.Thread(target=lambda: (list(stream), done.set()))
    reader.start()
    stream.close()
    reader.join(timeout=10)
    assert done.is_set()


def test_contribution_is_measured_while_evaluating_and_fine_tuning_only() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    bring_to(operator, "1", lc.EVALUATING)
    assert operator.measured_seed_ids() == ["1"]
    operator.record_eval_gain("1", 0.03)
    bring_to(operator, "1", lc.FINE_TUNING)
    assert operator.measured_seed_ids() == ["1"]
    operator.record_eval_gain("1", -0.01)
    adaptation = model.seed("1").adaptation
    assert adaptation is not None and adaptation.eval_gain == -0.01
    with pytest.raises(FailedPrecondition):
        operator.record_eval_gain("3", 0.1)  # dormant: nothing to measure
