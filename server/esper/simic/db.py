"""Simic's schema and database handle (SQLAlchemy 2.x Core, see esper.sqlstore).

SQLite by default, PostgreSQL when deployed. A field report is stored at most once:
`report_id` is unique, so a repeat is refused by the database itself, across
processes and restarts. `seq` numbers reports in the order Simic stored them
(newest first = highest seq), which also makes paging stable while reports arrive.
Times are integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table

from esper.sqlstore import Schema, SqlDatabase

SCHEMA_VERSION = 1
COMPONENT = "simic"
MAX_ID_LENGTH = 256

metadata = MetaData()

field_reports = Table(
    "field_reports",
    metadata,
    # SQLite autoincrements only an INTEGER primary key.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("report_id", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("run_id", String(MAX_ID_LENGTH), nullable=False),
    Column("seed_id", String(MAX_ID_LENGTH), nullable=False),
    Column("blueprint_id", String(MAX_ID_LENGTH), nullable=False),
    Column("outcome", Integer, nullable=False),
    # The serialized FieldReport, exactly as received.
    Column("report", LargeBinary, nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Index("ix_field_reports_run_seq", "run_id", "seq"),
)


class SimicDatabase(SqlDatabase):
    """Simic's database: the field reports."""

    schema = Schema(
        component=COMPONENT,
        title="Simic",
        version=SCHEMA_VERSION,
        metadata=metadata,
        marker_tables=("field_reports",),
        lock_key=0x73696D63,
    )
