"""Alerts as JSON: what `esper alerts --json` prints and a web page can show."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from esper.leyline.v1 import alert_pb2


def alert_to_json(alert: alert_pb2.Alert) -> dict[str, Any]:
    """{"name", "state": "FIRING"|"RESOLVED", "severity": "CRITICAL"|..., "summary", "labels", "value",
    "threshold", "start_time", "resolve_time" (RFC 3339 UTC, null while firing), "alert_id"}."""
    return {
        "alert_id": alert.alert_id,
        "name": alert.name,
        "state": alert_pb2.AlertState.Name(alert.state).removeprefix("ALERT_STATE_"),
        "severity": alert_pb2.AlertSeverity.Name(alert.severity).removeprefix("ALERT_SEVERITY_"),
        "summary": alert.summary,
        "labels": dict(sorted(alert.labels.items())),
        "value": alert.value,
        "threshold": alert.threshold,
        "start_time": _time(alert, "start_time"),
        "resolve_time": _time(alert, "resolve_time"),
    }


def _time(alert: alert_pb2.Alert, field: str) -> str | None:
    if not alert.HasField(field):
        return None
    stamp: Timestamp = getattr(alert, field)
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
