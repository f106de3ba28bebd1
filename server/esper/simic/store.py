"""Field reports at rest: insert once by report id, page newest first, count.

Duplicates are refused by the database (`report_id` is unique, inserts skip a
conflicting row), so two processes, a redelivery and a restart all store a
report once. Pages are keyset pages on `seq` (newest first): a report stored while
a client pages never shifts, repeats or hides the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from esper.leyline.v1 import control_pb2
from esper.simic.convert import report_from_row, report_row
from esper.simic.db import SimicDatabase, field_reports


@dataclass(frozen=True)
class Recorded:
    """What one insert did: reports newly stored and reports already there."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class ReportPage:
    """Reports newest first; `cursor` is the seq of the last one, `more` says whether older ones remain."""

    reports: list[control_pb2.FieldReport]
    cursor: int
    more: bool


class FieldReportStore:
    def __init__(self, database: SimicDatabase) -> None:
        self._database = database

    def add(self, reports: Sequence[control_pb2.FieldReport], create_us: int) -> Recorded:
        """Store each report whose id is new, all in one transaction (committed on return)."""
        accepted = 0
        with self._database.write() as conn:
            for report in reports:
                # RETURNING, not rowcount: on PostgreSQL rowcount is -1 whether or not the row was stored.
                stored = conn.execute(self._insert_new(), report_row(report, create_us)).first()
                accepted += stored is not None
        return Recorded(accepted=accepted, duplicates=len(reports) - accepted)

    def page(self, *, run_id: str, before: int, limit: int) -> ReportPage:
        """Up to `limit` reports stored before seq `before` (0: from the newest), of `run_id` if set."""
        query = select(field_reports.c.seq, field_reports.c.report).order_by(field_reports.c.seq.desc())
        if run_id:
            query = query.where(field_reports.c.run_id == run_id)
        if before:
            query = query.where(field_reports.c.seq < before)
        with self._database.read() as conn:
            rows = conn.execute(query.limit(limit + 1)).all()
        shown = rows[:limit]
        return ReportPage(
            reports=[report_from_row(row.report) for row in shown],
            cursor=shown[-1].seq if shown else 0,
            more=len(rows) > limit,
        )

    def count(self, *, run_id: str = "") -> int:
        query = select(func.count()).select_from(field_reports)
        if run_id:
            query = query.where(field_reports.c.run_id == run_id)
        with self._database.read() as conn:
            return int(conn.execute(query).scalar_one())

    def _insert_new(self) -> Any:
        """INSERT that silently skips a row whose report_id is already stored."""
        insert = sqlite_insert if self._database.dialect == "sqlite" else pg_insert
        skip = insert(field_reports).on_conflict_do_nothing(index_elements=["report_id"])
        return skip.returning(field_reports.c.seq)
