"""Request validation names the offending field; config validation refuses nonsense."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from esper.errors import FailedPrecondition, InvalidArgument, NotFound
from esper.leyline.v1 import lifecycle_pb2, tamiyo_pb2
from esper.tamiyo import TamiyoConfig
from esper.tamiyo.config import grafting_strategy_from_name
from tests.support.tamiyo import LAYOUT, RUN, SeedSimulator, make_controller

S = lifecycle_pb2
Mutation = Callable[[tamiyo_pb2.StepRequest], None]


def _request() -> tamiyo_pb2.StepRequest:
    return SeedSimulator().request(0, 0.5)


def _set_stage(request: tamiyo_pb2.StepRequest) -> None:
    request.packet.seed_stages[1] = 99  # type: ignore[call-overload]


def _drop_dead(request: tamiyo_pb2.StepRequest) -> None:
    del request.packet.seed_dead_bp[0]


def _swap_layout(request: tamiyo_pb2.StepRequest) -> None:
    del request.seed_layout[:]
    request.seed_layout.extend([LAYOUT[1], LAYOUT[0]])


def _duplicate_seed(request: tamiyo_pb2.StepRequest) -> None:
    request.seed_layout[1].seed_id = request.seed_layout[0].seed_id


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.ClearField("packet"), "packet"),
        (lambda r: setattr(r.packet, "run_id", ""), "packet.run_id"),
        (lambda r: setattr(r.packet, "validation_accuracy", 1.5), "packet.validation_accuracy"),
        (_swap_layout, "packet.layout_hash"),
        (lambda r: setattr(r.packet, "layout_hash", r.packet.layout_hash ^ 1), "packet.layout_hash"),
        (_drop_dead, "packet.seed_dead_bp"),
        (_set_stage, "packet.seed_stages[1]"),
        (_duplicate_seed, "seed_layout[1].seed_id"),
        (lambda r: setattr(r.seed_layout[0], "seed_id", ""), "seed_layout[0].seed_id"),
        (lambda r: setattr(r.telemetry[1], "seed_id", "elsewhere"), "telemetry[1].seed_id"),
        (lambda r: setattr(r.telemetry[1], "seed_id", "net.1"), "telemetry[1].seed_id"),
        (lambda r: setattr(r.telemetry[0], "run_id", "other-run"), "telemetry[0].run_id"),
        (lambda r: setattr(r.telemetry[0], "eval_gain", 2.0), "telemetry[0].eval_gain"),
        (lambda r: r.host_layers.add(module_path="net.0", seed_ids=["nowhere"]), "host_layers[0].seed_ids"),
        (lambda r: r.host_layers.add(module_path="x" * 300), "host_layers[0].module_path"),
        (lambda r: setattr(r, "device_kind", "gpu"), "device_kind"),
    ],
)
def test_invalid_step_names_the_field(mutate: Mutation, field: str) -> None:
    request = _request()
    mutate(request)
    with pytest.raises(InvalidArgument) as raised:
        make_controller(None).step(request)
    assert [v.field for v in raised.value.violations] == [field]


@pytest.mark.parametrize("version", [0, 2])
def test_unsupported_schema_version_is_a_failed_precondition(version: int) -> None:
    request = _request()
    request.packet.schema_version = version
    with pytest.raises(FailedPrecondition) as raised:
        make_controller(None).step(request)
    assert raised.value.reason == "SCHEMA_VERSION_UNSUPPORTED"
    assert f"packet.schema_version {version}" in raised.value.message


def test_a_refused_step_leaves_no_state_behind() -> None:
    controller = make_controller(None)
    request = _request()
    request.packet.validation_accuracy = 2.0
    with pytest.raises(InvalidArgument):
        controller.step(request)
    assert controller.get_status(tamiyo_pb2.GetStatusRequest()).tracked_runs == 0


def _adaptation(**fields: object) -> tamiyo_pb2.ActiveAdaptation:
    values: dict[str, object] = {
        "seed_id": "net.1",
        "germination_command_id": "c",
        "kernel_id": "k",
        "last_stage": S.SEED_STAGE_TRAINING,
        "germination_epoch": 3,
        "stage_entry_epoch": 4,
    }
    values.update(fields)
    return tamiyo_pb2.ActiveAdaptation(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "field"),
    [
        (None, "state"),
        (tamiyo_pb2.TamiyoControllerState(), "state.run_id"),
        (tamiyo_pb2.TamiyoControllerState(run_id=RUN, best_val_accuracy=math.nan), "state.best_val_accuracy"),
        (tamiyo_pb2.TamiyoControllerState(run_id=RUN, embargo_until={"": 3}), "state.embargo_until"),
        (
            tamiyo_pb2.TamiyoControllerState(run_id=RUN, active_adaptations=[_adaptation(seed_id="")]),
            "state.active_adaptations[0].seed_id",
        ),
        (
            tamiyo_pb2.TamiyoControllerState(run_id=RUN, active_adaptations=[_adaptation(), _adaptation()]),
            "state.active_adaptations[1].seed_id",
        ),
        (
            tamiyo_pb2.TamiyoControllerState(
                run_id=RUN, active_adaptations=[_adaptation(last_stage=S.SEED_STAGE_FOSSILIZED)]
            ),
            "state.active_adaptations[0].last_stage",
        ),
        (
            tamiyo_pb2.TamiyoControllerState(run_id=RUN, active_adaptations=[_adaptation(kernel_id="")]),
            "state.active_adaptations[0].kernel_id",
        ),
        (
            tamiyo_pb2.TamiyoControllerState(run_id=RUN, active_adaptations=[_adaptation(stage_entry_epoch=1)]),
            "state.active_adaptations[0].stage_entry_epoch",
        ),
        (
            tamiyo_pb2.TamiyoControllerState(run_id=RUN, active_adaptations=[_adaptation(pre_metric=math.inf)]),
            "state.active_adaptations[0].pre_metric",
        ),
    ],
)
def test_invalid_restore_names_the_field(state: tamiyo_pb2.TamiyoControllerState | None, field: str) -> None:
    request = tamiyo_pb2.RestoreControllerStateRequest()
    if state is not None:
        request.state.CopyFrom(state)
    with pytest.raises(InvalidArgument) as raised:
        make_controller(None).restore_controller_state(request)
    assert [v.field for v in raised.value.violations] == [field]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.load_policy(tamiyo_pb2.LoadPolicyRequest()), "policy_id"),
        (lambda c: c.export_controller_state(tamiyo_pb2.ExportControllerStateRequest()), "run_id"),
        (lambda c: c.get_status(tamiyo_pb2.GetStatusRequest(run_id="x" * 300)), "run_id"),
    ],
)
def test_other_requests_name_the_field(call: Callable[[object], object], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        call(make_controller(None))
    assert [v.field for v in raised.value.violations] == [field]


@pytest.mark.parametrize(
    "overrides",
    [
        {"policy_id": " "},
        {"policy_timeout_ms": 0.0},
        {"patience": 0},
        {"max_concurrent_seeds": 0},
        {"warmup_epochs": -1},
        {"min_delta": 1.5},
        {"harm_threshold": float("nan")},
        {"min_eval_gain": -2.0},
        {"max_seed_parameter_fraction": -1.0},
        {"step_budget_ms": 0.0},
        {"stage_timeout_epochs": 1, "fine_tune_epochs": 2},
        {"preferred_tags": ("",)},
        {"preferred_tags": ["list"]},
        {"grafting_strategy": "SUDDEN"},
        {"grafting_strategy": "UNSPECIFIED"},
        {"kernel_page_size": 5000},
    ],
)
def test_bad_config_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TamiyoConfig(**overrides)  # type: ignore[arg-type]


def test_grafting_strategy_names() -> None:
    assert TamiyoConfig().grafting_strategy_value == S.GRAFTING_STRATEGY_LINEAR_RAMP
    assert grafting_strategy_from_name("cosine_ramp") == S.GRAFTING_STRATEGY_COSINE_RAMP
    assert grafting_strategy_from_name("GRAFTING_STRATEGY_DRIFT_CONTROLLED") == S.GRAFTING_STRATEGY_DRIFT_CONTROLLED


def test_a_run_with_more_seeds_than_the_cap_is_refused() -> None:
    controller = make_controller(None, max_seeds_per_run=len(LAYOUT) - 1)
    with pytest.raises(InvalidArgument, match="at most 1 per run") as raised:
        controller.step(_request())
    assert raised.value.violations[0].field == "seed_layout"


def test_only_the_most_recently_stepped_runs_are_remembered() -> None:
    controller = make_controller(None, max_tracked_runs=2)
    for run_id in ("a", "b", "c"):
        request = _request()
        request.packet.run_id = run_id
        for telemetry in request.telemetry:
            telemetry.run_id = run_id
        controller.step(request)
    assert controller.get_status(tamiyo_pb2.GetStatusRequest()).tracked_runs == 2
    with pytest.raises(NotFound):
        controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id="a"))
    assert controller.export_controller_state(tamiyo_pb2.ExportControllerStateRequest(run_id="c")).state.run_id == "c"
