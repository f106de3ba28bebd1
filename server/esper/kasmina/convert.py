"""Kasmina's domain ↔ Leyline protos, and ↔ the plain dicts of checkpoints and lineage.json."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from esper.ir import width_units
from esper.kasmina.records import Adaptation, SeedSnapshot
from esper.kasmina.seed import KasminaSeed
from esper.leyline.v1 import blueprint_pb2, run_pb2, telemetry_pb2


def seed_state(seed: KasminaSeed) -> telemetry_pb2.SeedState:
    adaptation = seed.adaptation
    state = telemetry_pb2.SeedState(
        stage=seed.stage,  # type: ignore[arg-type]
        kernel_id=adaptation.kernel_id if adaptation is not None else "",
        blueprint_id=adaptation.blueprint_id if adaptation is not None else "",
        alpha=seed.alpha,
        stage_entry_epoch=seed.stage_entry_epoch,
        is_ready_for_transition=seed.is_ready_for_transition,
        embargo_until_epoch=seed.embargo_until_epoch,
        isolation_violations=seed.isolation_violations,
        last_transition_reason=seed.last_transition_reason,
        parameter_count=adaptation.parameter_count if adaptation is not None else 0,
        last_command_id=seed.last_command_id,
    )
    state.descriptor.CopyFrom(seed.descriptor)
    return state


def seed_telemetry(
    seed: KasminaSeed, *, run_id: str, epoch: int, global_step: int, seed_loss: float, report_time: Timestamp
) -> telemetry_pb2.SeedTelemetry:
    """One seed's report for `epoch`, from its last telemetry pass and sampled gradients."""
    summary = seed.activation_summary
    adaptation = seed.adaptation
    graft_epoch = adaptation.graft_epoch if adaptation is not None else None
    report = telemetry_pb2.SeedTelemetry(
        run_id=run_id,
        seed_id=seed.seed_id,
        epoch=epoch,
        global_step=global_step,
        stage=seed.stage,  # type: ignore[arg-type]
        chunk_variance=summary.chunk_variance,
        dead_node_ratio=summary.dead_node_ratio,
        avg_correlation=summary.avg_correlation,
        activation_mean=summary.activation_mean,
        activation_std=summary.activation_std,
        gradient_norm=seed.gradient_norm if seed.kernel is not None else 0.0,
        alpha=seed.alpha,
        epochs_since_graft=max(0, epoch - graft_epoch) if graft_epoch is not None else 0,
        is_ready_for_transition=seed.is_ready_for_transition,
        isolation_violations=seed.isolation_violations,
        execution_latency_us=summary.execution_latency_us,
        seed_loss=seed_loss,
        eval_gain=(adaptation.eval_gain or 0.0) if adaptation is not None else 0.0,
        parameter_count=adaptation.parameter_count if adaptation is not None else 0,
        kernel_id=adaptation.kernel_id if adaptation is not None else "",
        added_units=width_units(adaptation.ir) if adaptation is not None and adaptation.ir is not None else 0,
    )
    report.report_time.CopyFrom(report_time)
    return report


def seed_transition(
    seed_id: str, from_stage: int, to_stage: int, *, reason: str, command_id: str, epoch: int
) -> run_pb2.SeedTransition:
    return run_pb2.SeedTransition(
        seed_id=seed_id,
        from_stage=from_stage,  # type: ignore[arg-type]
        to_stage=to_stage,  # type: ignore[arg-type]
        reason=reason,
        command_id=command_id,
        epoch=epoch,
    )


def adaptation_to_dict(adaptation: Adaptation) -> dict[str, Any]:
    """JSON-ready (and torch.load(weights_only=True)-ready) form; the IR as protobuf JSON."""
    return {
        "kernel_id": adaptation.kernel_id,
        "blueprint_id": adaptation.blueprint_id,
        "template_id": adaptation.template_id,
        "grafting_strategy": adaptation.grafting_strategy,
        "selected_for_tags": list(adaptation.selected_for_tags),
        "germination_command_id": adaptation.germination_command_id,
        "germination_epoch": adaptation.germination_epoch,
        "pre_metric": adaptation.pre_metric,
        "graft_epoch": adaptation.graft_epoch,
        "fossilization_epoch": adaptation.fossilization_epoch,
        "eval_gain": adaptation.eval_gain,
        "parameter_count": adaptation.parameter_count,
        "ir": json_format.MessageToDict(adaptation.ir) if adaptation.ir is not None else None,
        "merged": adaptation.merged,
    }


def adaptation_from_dict(data: dict[str, Any]) -> Adaptation:
    ir_data = data.get("ir")
    ir = json_format.ParseDict(ir_data, blueprint_pb2.BlueprintIR()) if ir_data is not None else None
    return Adaptation(
        kernel_id=str(data["kernel_id"]),
        blueprint_id=str(data.get("blueprint_id", "")),
        template_id=str(data.get("template_id", "")),
        grafting_strategy=int(data.get("grafting_strategy", 0)),
        selected_for_tags=tuple(data.get("selected_for_tags", ())),
        germination_command_id=str(data.get("germination_command_id", "")),
        germination_epoch=int(data.get("germination_epoch", 0)),
        pre_metric=float(data.get("pre_metric", 0.0)),
        graft_epoch=_optional_int(data.get("graft_epoch")),
        fossilization_epoch=_optional_int(data.get("fossilization_epoch")),
        eval_gain=_optional_float(data.get("eval_gain")),
        parameter_count=int(data.get("parameter_count", 0)),
        ir=ir,
        merged=bool(data.get("merged", False)),
    )


def snapshot_to_dict(snapshot: SeedSnapshot) -> dict[str, Any]:
    return {
        "stage": snapshot.stage,
        "alpha": snapshot.alpha,
        "ramp_step": snapshot.ramp_step,
        "ramp_loss_average": snapshot.ramp_loss_average,
        "steps_in_stage": snapshot.steps_in_stage,
        "stage_entry_epoch": snapshot.stage_entry_epoch,
        "embargo_until_epoch": snapshot.embargo_until_epoch,
        "isolation_violations": snapshot.isolation_violations,
        "last_transition_reason": snapshot.last_transition_reason,
        "last_command_id": snapshot.last_command_id,
        "gradient_norm": snapshot.gradient_norm,
        "adaptation": adaptation_to_dict(snapshot.adaptation) if snapshot.adaptation is not None else None,
    }


def snapshot_from_dict(data: dict[str, Any]) -> SeedSnapshot:
    adaptation = data.get("adaptation")
    return SeedSnapshot(
        stage=int(data["stage"]),
        alpha=float(data.get("alpha", 0.0)),
        ramp_step=_optional_int(data.get("ramp_step")),
        ramp_loss_average=_optional_float(data.get("ramp_loss_average")),
        steps_in_stage=int(data.get("steps_in_stage", 0)),
        stage_entry_epoch=int(data.get("stage_entry_epoch", 0)),
        embargo_until_epoch=int(data.get("embargo_until_epoch", 0)),
        isolation_violations=int(data.get("isolation_violations", 0)),
        last_transition_reason=str(data.get("last_transition_reason", "")),
        last_command_id=str(data.get("last_command_id", "")),
        gradient_norm=float(data.get("gradient_norm", 0.0)),
        adaptation=adaptation_from_dict(adaptation) if adaptation is not None else None,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
