"""Field reports for Simic tests: distinct, valid, with ids that say what they are."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from esper.leyline.v1 import control_pb2, lifecycle_pb2


def field_report(index: int, *, run_id: str = "run-1", report_id: str = "") -> control_pb2.FieldReport:
    report = control_pb2.FieldReport(
        report_id=report_id or f"report-{run_id}-{index:04d}",
        run_id=run_id,
        seed_id=f"blocks.{index % 4}.mlp",
        blueprint_id=f"bp-{index % 3}",
        kernel_id=f"kernel-{index % 3}-cpu-fast",
        outcome=lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED if index % 2 else lifecycle_pb2.ADAPTATION_OUTCOME_CULLED,
        pre_metric=0.5,
        post_metric=0.5 + index / 10_000,
        eval_metrics={"eval_gain": 0.01 * (index % 5), "params_added": float(100 * index)},
        epochs_active=3 + index % 7,
        germination_command_id=f"cmd-{index}",
        selected_for_tags=["low_memory"],
        reason=f"outcome {index}",
    )
    report.report_time.CopyFrom(timestamp_pb2.Timestamp(seconds=1_700_000_000 + index))
    return report


def field_reports(count: int, *, run_id: str = "run-1", start: int = 0) -> list[control_pb2.FieldReport]:
    return [field_report(i, run_id=run_id) for i in range(start, start + count)]
