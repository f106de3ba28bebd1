"""Urza's metadata schema and database handle (SQLAlchemy 2.x Core, see esper.sqlstore).

SQLite by default (foreign keys enforced), PostgreSQL when deployed. Times are integer
microseconds since the Unix epoch (UTC), which both dialects store and order alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
    update,
)

from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.sqlstore import Schema, SqlDatabase
from esper.sqlstore import schema_meta as schema_meta

# 2: kernels record their growth kind and output shape (width kernels change the shape).
# 3: kernels carry their compile worker's signature.
SCHEMA_VERSION = 3
COMPONENT = "urza"
_JOB = kernel_pb2.CompileJobStatus

metadata = MetaData()

blueprints = Table(
    "blueprints",
    metadata,
    Column("blueprint_id", String(64), primary_key=True),
    Column("ir_sha256", String(64), nullable=False, unique=True),
    Column("ir", LargeBinary, nullable=False),
    Column("template_id", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("tier", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("failure_reason", Text, nullable=False),
    Column("parameter_estimate", BigInteger, nullable=False),
    Column("tags", Text, nullable=False),
    Column("input_kind", Integer, nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Column("update_us", BigInteger, nullable=False),
    Index("ix_blueprints_status_create", "status", "create_us"),
    Index("ix_blueprints_create", "create_us"),
)

compile_jobs = Table(
    "compile_jobs",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("blueprint_id", String(64), ForeignKey("blueprints.blueprint_id"), nullable=False),
    Column("pipeline", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("worker_id", String(256), nullable=False),
    Column("lease_token", String(64), nullable=False),
    Column("lease_expire_us", BigInteger, nullable=False),
    Column("kernel_id", String(256), nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Column("update_us", BigInteger, nullable=False),
    Index("ix_compile_jobs_status_create", "status", "create_us"),
    Index("ix_compile_jobs_blueprint", "blueprint_id"),
    Index("ix_compile_jobs_worker", "worker_id", "status"),
)

kernels = Table(
    "kernels",
    metadata,
    Column("kernel_id", String(256), primary_key=True),
    Column("blueprint_id", String(64), ForeignKey("blueprints.blueprint_id"), nullable=False),
    Column("pipeline", Integer, nullable=False),
    Column("hardware_target", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("object_key", String(512), nullable=False),
    Column("status", Integer, nullable=False),
    Column("input_kind", Integer, nullable=False),
    # Canonical "d1,d2,..." so an exact-shape query is one string comparison.
    Column("input_shape", String(256), nullable=False),
    # GrowthKind, DEPTH (1) for kernels whose IR does not say; and the output shape like input_shape.
    Column("growth_kind", Integer, nullable=False),
    Column("output_shape", String(256), nullable=False),
    Column("parameter_count", BigInteger, nullable=False),
    Column("toolchain_hash", String(128), nullable=False),
    Column("compile_duration_us", BigInteger, nullable=False),
    Column("template_id", String(128), nullable=False),
    Column("worker_id", String(256), nullable=False),
    Column("lease_token", String(64), nullable=False),
    Column("lease_expire_us", BigInteger, nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Column("update_us", BigInteger, nullable=False),
    # KernelSignature: Ed25519 signature and signing key id; empty for kernels stored unsigned.
    Column("signature", LargeBinary, nullable=False),
    Column("signing_key_id", String(64), nullable=False),
    Index("ix_kernels_blueprint", "blueprint_id"),
    Index("ix_kernels_status_create", "status", "create_us"),
    Index("ix_kernels_worker", "worker_id", "status"),
)

kernel_tags = Table(
    "kernel_tags",
    metadata,
    Column("kernel_id", String(256), ForeignKey("kernels.kernel_id"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_kernel_tags_tag", "tag"),
)

validation_reports = Table(
    "validation_reports",
    metadata,
    Column("kernel_id", String(256), ForeignKey("kernels.kernel_id"), primary_key=True),
    Column("passed", Boolean, nullable=False),
    # A serialized UrabraskValidationReport.
    Column("report", LargeBinary, nullable=False),
    Column("create_us", BigInteger, nullable=False),
)

URZA_TABLES = ("blueprints", "compile_jobs", "kernels", "kernel_tags", "validation_reports")


def _kernels_record_growth(conn: Connection) -> None:
    """Schema 1 -> 2: every kernel stored before width kernels is a depth kernel keeping its shape."""
    conn.execute(text("ALTER TABLE kernels ADD COLUMN growth_kind INTEGER NOT NULL DEFAULT 1"))
    conn.execute(text("ALTER TABLE kernels ADD COLUMN output_shape VARCHAR(256) NOT NULL DEFAULT ''"))
    conn.execute(text("UPDATE kernels SET output_shape = input_shape"))


def _add_kernel_signatures(conn: Connection) -> None:
    """Schema 2 -> 3: kernels get signature columns, and every kernel stored so far (unsigned,
    so nothing would load it) is REJECTED and its compile job queued again, so the next
    compile worker stores a signed kernel in its place (under a new id: the artifact format
    is part of the toolchain hash)."""
    binary = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    empty = "''::bytea" if conn.dialect.name == "postgresql" else "x''"
    conn.execute(text(f"ALTER TABLE kernels ADD COLUMN signature {binary} NOT NULL DEFAULT {empty}"))
    conn.execute(text("ALTER TABLE kernels ADD COLUMN signing_key_id VARCHAR(64) NOT NULL DEFAULT ''"))
    unsigned = select(kernels.c.kernel_id).where(kernels.c.signing_key_id == "")
    job = compile_jobs.c
    requeued = conn.execute(
        select(job.blueprint_id).where(job.kernel_id.in_(unsigned), job.status == _JOB.COMPILE_JOB_STATUS_SUCCEEDED)
    ).scalars()
    blueprint_ids = sorted(set(requeued))
    conn.execute(
        update(compile_jobs)
        .where(job.kernel_id.in_(unsigned), job.status == _JOB.COMPILE_JOB_STATUS_SUCCEEDED)
        .values(
            status=_JOB.COMPILE_JOB_STATUS_QUEUED,
            attempts=0,
            kernel_id="",
            worker_id="",
            lease_token="",
            lease_expire_us=0,
            last_error="queued again: its kernel was stored before kernels were signed",
        )
    )
    conn.execute(
        update(kernels)
        .where(kernels.c.signing_key_id == "")
        .values(status=kernel_pb2.KERNEL_STATUS_REJECTED, worker_id="", lease_token="", lease_expire_us=0)
    )
    if blueprint_ids:
        # VALIDATED is never left on its own; these blueprints have no loadable kernel any more.
        conn.execute(
            update(blueprints)
            .where(blueprints.c.blueprint_id.in_(blueprint_ids))
            .values(status=blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED, failure_reason="")
        )


class UrzaDatabase(SqlDatabase):
    """Urza's database: blueprints, compile jobs, kernels and validation reports."""

    schema = Schema(
        component=COMPONENT,
        title="Urza",
        version=SCHEMA_VERSION,
        metadata=metadata,
        marker_tables=URZA_TABLES,
        lock_key=0x75727A61,
        sqlite_foreign_keys=True,
        migrations={1: _kernels_record_growth, 2: _add_kernel_signatures},
    )
