"""Proto <-> domain for Tamiyo: requests to observations, outcomes to responses, run state both ways."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import timestamp_pb2

from esper.leyline.v1 import control_pb2, kernel_pb2, lifecycle_pb2, tamiyo_pb2, telemetry_pb2
from esper.state import SeedFeatures
from esper.tamiyo.issued import Boundary
from esper.tamiyo.observation import Observation, PackedFeatures, SeedLayout, SeedView, StepOutcome
from esper.tamiyo.state import Adaptation, GrowthStep, RunState


def observation_from_request(
    request: tamiyo_pb2.StepRequest,
    features: Sequence[SeedFeatures],
    *,
    model_parameters: int = 0,
    layout: SeedLayout | None = None,
) -> Observation:
    """A validated StepRequest as the policy sees it.

    `model_parameters` stands in for the request's parameter_count when that is 0;
    `layout` is the run's seed layout as arrays when the caller already has it.
    """
    packet = request.packet
    boundary_time = timestamp_pb2.Timestamp()
    boundary_time.CopyFrom(packet.packet_time)
    telemetry = {report.seed_id: report for report in request.telemetry}
    seeds = tuple(
        SeedView(descriptor=descriptor, features=feature, telemetry=telemetry.get(descriptor.seed_id))
        for descriptor, feature in zip(request.seed_layout, features, strict=True)
    )
    return Observation(
        boundary=Boundary(
            run_id=packet.run_id,
            epoch=packet.epoch,
            score=_score(packet),
            time=boundary_time,
            metric_direction=packet.metric_direction,
        ),
        training_loss=float(packet.training_loss),
        validation_loss=float(packet.validation_loss),
        seeds=seeds,
        model_parameters=int(request.parameter_count) or model_parameters,
        final_epoch=int(request.final_epoch),
        host_layers=tuple(request.host_layers),
        packed=PackedFeatures.of(packet),
        known_layout=layout,
        device_kind=request.device_kind,
    )


def _score(packet: telemetry_pb2.SystemStatePacket) -> float:
    """The packet's validation metric oriented so that higher is better (its accuracy when no metric is set)."""
    if packet.metric_direction == lifecycle_pb2.METRIC_DIRECTION_LOWER_IS_BETTER:
        return -float(packet.validation_metric)
    if packet.metric_direction == lifecycle_pb2.METRIC_DIRECTION_HIGHER_IS_BETTER:
        return float(packet.validation_metric)
    return float(packet.validation_accuracy)


def response_from_outcome(outcome: StepOutcome, *, conservative_mode: bool) -> tamiyo_pb2.StepResponse:
    return tamiyo_pb2.StepResponse(
        commands=outcome.commands,
        signal=control_pb2.AdaptationSignal(
            conservative_mode=conservative_mode,
            emergency_rollback_required=outcome.emergency_rollback,
            optimizer_rebuild_required=outcome.optimizer_rebuild,
            reason="; ".join(outcome.signal_reasons),
        ),
        decisions=outcome.decisions,
        field_reports=outcome.field_reports,
    )


def adaptation_to_proto(adaptation: Adaptation) -> tamiyo_pb2.ActiveAdaptation:
    return tamiyo_pb2.ActiveAdaptation(
        seed_id=adaptation.seed_id,
        germination_command_id=adaptation.germination_command_id,
        kernel_id=adaptation.kernel_id,
        blueprint_id=adaptation.blueprint_id,
        germination_epoch=adaptation.germination_epoch,
        pre_metric=adaptation.pre_metric,
        selected_for_tags=adaptation.selected_for_tags,
        eval_gain=adaptation.eval_gain,
        kernel_report=adaptation.kernel_report,
        last_stage=adaptation.last_stage,
        stage_entry_epoch=adaptation.stage_entry_epoch,
    )


def adaptation_from_proto(message: tamiyo_pb2.ActiveAdaptation) -> Adaptation:
    report = kernel_pb2.UrabraskValidationReport()
    report.CopyFrom(message.kernel_report)
    return Adaptation(
        seed_id=message.seed_id,
        germination_command_id=message.germination_command_id,
        kernel_id=message.kernel_id,
        blueprint_id=message.blueprint_id,
        germination_epoch=message.germination_epoch,
        pre_metric=message.pre_metric,
        selected_for_tags=tuple(message.selected_for_tags),
        kernel_report=report,
        last_stage=message.last_stage,
        stage_entry_epoch=message.stage_entry_epoch,
        eval_gain=message.eval_gain,
    )


def state_to_proto(state: RunState) -> tamiyo_pb2.TamiyoControllerState:
    """The run's full state; adaptations ordered by seed id so equal states export equal messages."""
    return tamiyo_pb2.TamiyoControllerState(
        run_id=state.run_id,
        best_val_accuracy=state.best_val_score,
        epochs_since_improvement=state.epochs_since_improvement,
        last_epoch=state.last_epoch,
        embargo_until=state.embargo_until,
        commands_issued=state.commands_issued,
        conservative_mode=state.conservative_mode,
        active_adaptations=[adaptation_to_proto(state.adaptations[seed]) for seed in sorted(state.adaptations)],
        blueprint_scores=state.blueprint_scores,
        growth_steps=[growth_step_to_proto(step) for step in state.growth_steps],
    )


def growth_step_to_proto(step: GrowthStep) -> tamiyo_pb2.GrowthStep:
    return tamiyo_pb2.GrowthStep(
        seed_id=step.seed_id,
        growth_kind=step.growth_kind,  # type: ignore[arg-type]
        parameter_count=step.parameter_count,
        accuracy_gain=step.score_gain,
        epoch=step.epoch,
    )


def growth_step_from_proto(message: tamiyo_pb2.GrowthStep) -> GrowthStep:
    return GrowthStep(
        seed_id=message.seed_id,
        growth_kind=message.growth_kind,
        parameter_count=message.parameter_count,
        score_gain=message.accuracy_gain,
        epoch=message.epoch,
    )


def state_from_proto(message: tamiyo_pb2.TamiyoControllerState) -> RunState:
    """A validated state. Only a stepped run's state is ever exported, so the run counts as stepped."""
    return RunState(
        run_id=message.run_id,
        best_val_score=message.best_val_accuracy,
        epochs_since_improvement=message.epochs_since_improvement,
        last_epoch=message.last_epoch,
        commands_issued=message.commands_issued,
        conservative_mode=message.conservative_mode,
        embargo_until=dict(message.embargo_until),
        adaptations={a.seed_id: adaptation_from_proto(a) for a in message.active_adaptations},
        blueprint_scores=dict(message.blueprint_scores),
        last_val_score=message.best_val_accuracy,
        stepped=True,
        growth_steps=[growth_step_from_proto(step) for step in message.growth_steps],
    )
