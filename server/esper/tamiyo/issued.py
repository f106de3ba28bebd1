"""What Tamiyo issues: commands and field reports, with deterministic ids.

Ids are UUIDv5 of what identifies the thing, so a run replayed from the same
inputs issues the same command ids (Kasmina applies a command id at most once) and
the same report ids (Karn and Simic drop duplicates by it). Times are the packet's
epoch-boundary time, never the wall clock, for the same reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from esper.leyline.v1 import control_pb2, lifecycle_pb2
from esper.tamiyo.state import Adaptation

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://esper.leyline.v1/tamiyo")

Outcome = lifecycle_pb2.AdaptationOutcome
CommandType = lifecycle_pb2.CommandType

# Blueprint score change per outcome (TamiyoControllerState.blueprint_scores).
OUTCOME_SCORE: dict[Outcome, int] = {
    lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED: 1,
    lifecycle_pb2.ADAPTATION_OUTCOME_CULLED: -1,
    lifecycle_pb2.ADAPTATION_OUTCOME_ROLLED_BACK: -1,
    lifecycle_pb2.ADAPTATION_OUTCOME_CANCELLED: 0,
}


def command_id(
    run_id: str,
    epoch: int,
    seed_id: str,
    command_type: CommandType,
    target_stage: lifecycle_pb2.SeedStage = lifecycle_pb2.SEED_STAGE_UNSPECIFIED,
) -> str:
    name = lifecycle_pb2.CommandType.Name(command_type)
    if target_stage != lifecycle_pb2.SEED_STAGE_UNSPECIFIED:
        name += ":" + lifecycle_pb2.SeedStage.Name(target_stage)
    return str(uuid.uuid5(_NAMESPACE, f"command/{run_id}/{epoch}/{seed_id}/{name}"))


def report_id(run_id: str, seed_id: str, germination_command_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"report/{run_id}/{seed_id}/{germination_command_id}"))


@dataclass(frozen=True)
class Boundary:
    """The epoch boundary a step decides at.

    `score` is the run's validation metric oriented so that higher is better: the
    accuracy while `metric_direction` is UNSPECIFIED, else the metric (negated when
    lower is better). Every rule compares scores, so one rule serves every metric.
    """

    run_id: str
    epoch: int
    score: float
    time: timestamp_pb2.Timestamp
    metric_direction: lifecycle_pb2.MetricDirection = lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED

    def metric(self, score: float) -> float:
        """A score back in the metric's own units."""
        return -score if self.metric_direction == lifecycle_pb2.METRIC_DIRECTION_LOWER_IS_BETTER else score

    @property
    def metric_word(self) -> str:
        return "accuracy" if self.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED else "the metric"

    def shown(self, score: float) -> str:
        """A score for a reason: "accuracy 0.9120" or "metric 2.3104 (lower is better)"."""
        if self.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED:
            return f"accuracy {score:.4f}"
        lower = self.metric_direction == lifecycle_pb2.METRIC_DIRECTION_LOWER_IS_BETTER
        return f"metric {self.metric(score):.4f} ({'lower' if lower else 'higher'} is better)"


def make_command(
    boundary: Boundary,
    seed_id: str,
    command_type: CommandType,
    reason: str,
    *,
    target_stage: lifecycle_pb2.SeedStage = lifecycle_pb2.SEED_STAGE_UNSPECIFIED,
) -> control_pb2.AdaptationCommand:
    command = control_pb2.AdaptationCommand(
        command_id=command_id(boundary.run_id, boundary.epoch, seed_id, command_type, target_stage),
        run_id=boundary.run_id,
        seed_id=seed_id,
        command_type=command_type,
        target_stage=target_stage,
        reason=reason,
        epoch=boundary.epoch,
        priority=lifecycle_pb2.MESSAGE_PRIORITY_NORMAL,
    )
    command.issue_time.CopyFrom(boundary.time)
    return command


def field_report(
    boundary: Boundary,
    adaptation: Adaptation,
    outcome: Outcome,
    reason: str,
    *,
    parameter_count: int | None,
) -> control_pb2.FieldReport:
    """The FieldReport of an adaptation that ended at `boundary`.

    `parameter_count` is the kernel's trainable parameters when known (from the
    seed's telemetry); params_added counts them only for a fossilized seed, since a
    culled or cancelled one leaves the model.
    """
    epochs_active = adaptation.epochs_active(boundary.epoch)
    metrics = {
        "eval_gain": adaptation.eval_gain,
        "epochs_active": float(epochs_active),
        "accuracy_delta": boundary.score - adaptation.pre_metric,
    }
    if parameter_count is not None:
        kept = outcome == lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED
        metrics["params_added"] = float(parameter_count if kept else 0)
        metrics["kernel_parameters"] = float(parameter_count)
    report = control_pb2.FieldReport(
        report_id=report_id(boundary.run_id, adaptation.seed_id, adaptation.germination_command_id),
        run_id=boundary.run_id,
        seed_id=adaptation.seed_id,
        blueprint_id=adaptation.blueprint_id,
        kernel_id=adaptation.kernel_id,
        outcome=outcome,
        pre_metric=boundary.metric(adaptation.pre_metric),
        post_metric=boundary.metric(boundary.score),
        metric_direction=boundary.metric_direction,
        eval_metrics=metrics,
        epochs_active=epochs_active,
        germination_command_id=adaptation.germination_command_id,
        selected_for_tags=adaptation.selected_for_tags,
        reason=reason,
    )
    report.kernel_report.CopyFrom(adaptation.kernel_report)
    report.report_time.CopyFrom(boundary.time)
    return report
