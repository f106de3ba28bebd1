"""What the board shows: a run as JSON for the mission-control page, and as a Leyline RunSummary.

JSON numbers are finite or null (JSON has no NaN); enum values are their names
without the type prefix ("TRAINING", "GERMINATE", "RUNNING", "WARNING").
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from esper.leyline.v1 import alert_pb2, lifecycle_pb2, run_pb2
from esper.nissa.board_run import EpochPoint, RunRecord, SeedView, seconds

JsonObject = dict[str, Any]


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def stage_name(stage: int) -> str:
    return lifecycle_pb2.SeedStage.Name(stage).removeprefix("SEED_STAGE_") if stage else ""


def status_name(status: int) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")


def alert_view(alert: alert_pb2.Alert) -> JsonObject:
    return {
        "alert_id": alert.alert_id,
        "name": alert.name,
        "severity": alert_pb2.AlertSeverity.Name(alert.severity).removeprefix("ALERT_SEVERITY_"),
        "state": alert_pb2.AlertState.Name(alert.state).removeprefix("ALERT_STATE_"),
        "summary": alert.summary,
        "labels": dict(sorted(alert.labels.items())),
        "value": finite(alert.value),
        "threshold": finite(alert.threshold),
        "start_time": seconds(alert.start_time) or None,
        "resolve_time": seconds(alert.resolve_time) or None,
    }


def run_view(record: RunRecord) -> JsonObject:
    """One run for the page: status, the curve with seed transitions marked, seeds by layer, decisions."""
    curve = [_point_view(record.epochs[epoch]) for epoch in sorted(record.epochs)]
    best = max((p["val_accuracy"] for p in curve if p["val_accuracy"] is not None), default=None)
    hook = record.hook_ms()
    return {
        "run_id": record.run_id,
        "status": status_name(record.status),
        "finished": record.finished,
        "source": record.source,
        "first_time": record.first_time or None,
        "last_time": record.last_time or None,
        "end_time": record.end_time or None,
        "last_epoch": record.last_epoch,
        "epochs_seen": len(curve),
        "latest": curve[-1] if curve else None,
        "best_val_accuracy": best,
        "hook_ms_p50": finite(statistics.median(hook)) if hook else None,
        "curve": curve,
        "marks": [_transition_view(sequence, t) for sequence, t in record.transitions.oldest_first()],
        "layers": _layers(record),
        "layout_confirmed": record.layout_confirmed,
        "decisions": [
            {
                "sequence": sequence,
                "epoch": decision.epoch,
                "seed_id": decision.seed_id,
                "command_type": lifecycle_pb2.CommandType.Name(decision.command_type).removeprefix("COMMAND_TYPE_")
                if decision.command_type
                else "WAIT",
                "command_id": decision.command_id,
                "reason": decision.reason,
            }
            for sequence, decision in record.decisions.newest_first()
        ],
        "notices": [
            {"sequence": sequence, "time": when or None, "text": text}
            for sequence, (when, text) in record.notices.newest_first()
        ],
        "alerts": [alert_view(alert) for _, alert in sorted(record.alerts.values(), key=lambda a: -a[0])],
        "counts": dict(sorted(record.counts.items())),
        "isolation_violations": sum(seed.isolation_violations for seed in record.seeds.values()),
    }


def run_summary(record: RunRecord) -> run_pb2.RunSummary:
    """The parts of RunSummary the bus shows. final_test_accuracy stays 0: no run event carries it."""
    points = [record.epochs[epoch] for epoch in sorted(record.epochs)]
    params = [p.parameter_count for p in points if p.parameter_count is not None]
    hook = sorted(record.hook_ms())
    accuracies = [p.val_accuracy for p in points if math.isfinite(p.val_accuracy)]
    return run_pb2.RunSummary(
        best_val_accuracy=max(accuracies, default=0.0),
        params_initial=params[0] if params else 0,
        params_final=params[-1] if params else 0,
        seeds_germinated=record.counts.get("germinated", 0),
        seeds_fossilized=record.counts.get("fossilized", 0),
        seeds_culled=record.counts.get("culled", 0),
        epochs=len(points),
        wall_seconds=max(0.0, (record.end_time or record.last_time) - record.first_time),
        hook_ms_p50=statistics.median(hook) if hook else 0.0,
        hook_ms_p95=_percentile(hook, 95) if hook else 0.0,
        isolation_violations=sum(seed.isolation_violations for seed in record.seeds.values()),
    )


def _point_view(point: EpochPoint) -> JsonObject:
    return {
        "epoch": point.epoch,
        "train_loss": finite(point.train_loss),
        "val_loss": finite(point.val_loss),
        "train_accuracy": finite(point.train_accuracy),
        "val_accuracy": finite(point.val_accuracy),
        "parameter_count": point.parameter_count,
        "hook_ms": finite(point.hook_ms),
    }


def _transition_view(sequence: int, transition: run_pb2.SeedTransition) -> JsonObject:
    return {
        "sequence": sequence,
        "epoch": transition.epoch,
        "seed_id": transition.seed_id,
        "from_stage": stage_name(transition.from_stage),
        "to_stage": stage_name(transition.to_stage),
        "reason": transition.reason,
    }


def _seed_view(seed: SeedView) -> JsonObject:
    return {
        "seed_id": seed.seed_id,
        "stage": stage_name(seed.stage) or "UNKNOWN",
        "alpha": finite(seed.alpha),
        "epoch": seed.epoch,
        "kernel_id": seed.kernel_id,
        "blueprint_id": seed.blueprint_id,
        "eval_gain": finite(seed.eval_gain),
        "parameter_count": seed.parameter_count,
        "isolation_violations": seed.isolation_violations,
        "ready": seed.ready,
        "last_reason": seed.last_reason,
    }


def _layers(record: RunRecord) -> list[JsonObject]:
    """Seeds grouped by layer, input side first: Kasmina places one seed per layer."""
    return [
        {"layer": layer, "seeds": [_seed_view(record.seeds[seed_id])]}
        for layer, seed_id in enumerate(record.seed_order())
    ]


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile, as the run folder's summary computes it."""
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
