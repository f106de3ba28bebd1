"""FieldReport proto <-> a `field_reports` row.

The row keeps the report's serialized bytes (the whole report, as received) plus
the columns Simic filters and indexes on.
"""

from __future__ import annotations

from typing import Any

from esper.leyline.v1 import control_pb2


def report_row(report: control_pb2.FieldReport, create_us: int) -> dict[str, Any]:
    """The values of a new `field_reports` row holding `report`, stored at `create_us`."""
    return {
        "report_id": report.report_id,
        "run_id": report.run_id,
        "seed_id": report.seed_id,
        "blueprint_id": report.blueprint_id,
        "outcome": int(report.outcome),
        "report": report.SerializeToString(deterministic=True),
        "create_us": create_us,
    }


def report_from_row(report_bytes: bytes) -> control_pb2.FieldReport:
    """The FieldReport a row's `report` column holds."""
    report = control_pb2.FieldReport()
    report.ParseFromString(report_bytes)
    return report
