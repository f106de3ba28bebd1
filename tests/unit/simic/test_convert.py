"""FieldReport <-> field_reports row."""

from __future__ import annotations

from esper.leyline.v1 import lifecycle_pb2
from esper.simic.convert import report_from_row, report_row
from tests.support.field_reports import field_report


def test_a_report_survives_its_row_unchanged() -> None:
    report = field_report(7, run_id="run-x")
    report.kernel_report.kernel_id = "kernel-1-cpu-fast"
    report.kernel_report.latency_ms_mean = 0.25
    row = report_row(report, create_us=123)
    assert report_from_row(row["report"]) == report


def test_the_row_carries_the_columns_simic_filters_on() -> None:
    row = report_row(field_report(3, run_id="run-x"), create_us=42)
    assert row["report_id"] == "report-run-x-0003"
    assert (row["run_id"], row["seed_id"], row["blueprint_id"]) == ("run-x", "blocks.3.mlp", "bp-0")
    assert row["outcome"] == lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED
    assert row["create_us"] == 42
