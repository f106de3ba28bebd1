"""Simic's schema and database handle (SQLAlchemy 2.x Core, see esper.sqlstore).

SQLite by default, PostgreSQL when deployed. A field report and a transition are
stored at most once: their ids are unique, so a repeat is refused by the database
itself, across processes and restarts. `seq` numbers rows in the order Simic stored
them (newest first = highest seq), which also makes paging stable while rows arrive.
Times are integer microseconds since the Unix epoch (UTC).

Transitions and policies keep their small, queryable fields here and their tensors
(observation graphs, masks; policy weights) in the object store under `object_key`.
Version 2 added transitions, policies and training jobs; a version-1 database is
upgraded in place (the new tables are created, nothing else changes).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from esper.sqlstore import Schema, SqlDatabase

SCHEMA_VERSION = 2
COMPONENT = "simic"
MAX_ID_LENGTH = 256

metadata = MetaData()


def _seq() -> Column[int]:
    # SQLite autoincrements only an INTEGER primary key.
    return Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)


field_reports = Table(
    "field_reports",
    metadata,
    _seq(),
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

transitions = Table(
    "transitions",
    metadata,
    _seq(),
    Column("transition_id", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("run_id", String(MAX_ID_LENGTH), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("policy_id", String(MAX_ID_LENGTH), nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("fallback", Boolean, nullable=False),
    # The PolicyTransition without its observation and masks (those are in the object store).
    Column("record", LargeBinary, nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Index("ix_transitions_policy_seq", "policy_id", "seq"),
    Index("ix_transitions_run_epoch", "run_id", "epoch"),
)

policies = Table(
    "policies",
    metadata,
    _seq(),
    Column("policy_id", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("version", Integer, nullable=False, unique=True),
    # The serialized PolicyUpdate (card included).
    Column("update", LargeBinary, nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("published", Boolean, nullable=False),
    Column("create_us", BigInteger, nullable=False),
)

training_jobs = Table(
    "training_jobs",
    metadata,
    Column("job_id", String(MAX_ID_LENGTH), primary_key=True),
    # The serialized TrainingJob and the request that started it.
    Column("job", LargeBinary, nullable=False),
    Column("request", LargeBinary, nullable=False),
    Column("log", Text, nullable=False, default=""),
    Column("create_us", BigInteger, nullable=False),
)

_VERSION_2_TABLES = (transitions, policies, training_jobs)


def _upgrade_from_1(conn: Connection) -> None:
    for table in _VERSION_2_TABLES:
        table.create(conn, checkfirst=True)


class SimicDatabase(SqlDatabase):
    """Simic's database: field reports, transitions, policies and training jobs."""

    schema = Schema(
        component=COMPONENT,
        title="Simic",
        version=SCHEMA_VERSION,
        metadata=metadata,
        marker_tables=("field_reports",),
        lock_key=0x73696D63,
        migrations={1: _upgrade_from_1},
    )
