"""Urza's metadata schema and database handle (SQLAlchemy 2.x Core).

SQLite (a file; WAL journal, busy timeout, write transactions taken with
`BEGIN IMMEDIATE` so concurrent writers queue instead of failing) by default,
PostgreSQL through `postgresql+psycopg://...` when deployed. Times are integer
microseconds since the Unix epoch (UTC), which both dialects store and order alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from esper.errors import FailedPrecondition, Unavailable

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COMPONENT = "urza"
# Arbitrary constant: serializes schema creation between processes sharing a PostgreSQL database.
_PG_SCHEMA_LOCK = 0x75727A61
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "esper_write"
# PostgreSQL aborts one of two deadlocked transactions; retrying it succeeds.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
T = TypeVar("T")

metadata = MetaData()

schema_meta = Table(
    "schema_meta",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

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
    Column("parameter_count", BigInteger, nullable=False),
    Column("toolchain_hash", String(128), nullable=False),
    Column("compile_duration_us", BigInteger, nullable=False),
    Column("template_id", String(128), nullable=False),
    Column("worker_id", String(256), nullable=False),
    Column("lease_token", String(64), nullable=False),
    Column("lease_expire_us", BigInteger, nullable=False),
    Column("create_us", BigInteger, nullable=False),
    Column("update_us", BigInteger, nullable=False),
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


class UrzaDatabase:
    """The engine plus read and write transactions; `open()` checks or creates the schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        if not (self.is_sqlite or self.is_postgres):
            raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
        self.engine = _sqlite_engine(url) if self.is_sqlite else create_engine(url, pool_pre_ping=True)

    @classmethod
    def open(cls, url: str) -> UrzaDatabase:
        database = cls(url)
        try:
            database.ensure_schema()
        except BaseException:
            database.close()
            raise
        return database

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads."""
        with _unavailable_on_connect(self.engine), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; all of it commits or none of it does."""
        with _unavailable_on_connect(self.engine), self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def transact(self, work: Callable[[Connection], T], *, attempts: int = 3) -> T:
        """Run `work` in a write transaction, again from the start if the database aborted it
        to break a deadlock or a serialization conflict. `work` must only touch the database."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if attempt == attempts or not _is_transient(exc):
                    raise
                logger.info("transaction aborted by the database (%s); attempt %d", exc.orig, attempt + 1)
        raise AssertionError("unreachable")

    def ensure_schema(self) -> None:
        """Create the tables in an empty database; refuse one with another schema version."""
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
            present = set(inspect(conn).get_table_names())
            if "schema_meta" in present:
                stored = conn.execute(
                    select(schema_meta.c.version).where(schema_meta.c.component == COMPONENT)
                ).scalar_one_or_none()
            else:
                stored = None
            if stored is None and present.intersection(URZA_TABLES):
                raise FailedPrecondition(
                    f"database {self.safe_url} has Urza tables but no recorded schema version; "
                    f"refusing to use it (expected schema version {SCHEMA_VERSION})",
                    reason="SCHEMA_VERSION_UNSUPPORTED",
                )
            if stored is not None and stored != SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"database {self.safe_url} holds Urza schema version {stored}, this server supports "
                    f"version {SCHEMA_VERSION}; migrate the database or use a matching server",
                    reason="SCHEMA_VERSION_UNSUPPORTED",
                )
            if stored is None:
                metadata.create_all(conn)
                conn.execute(schema_meta.insert().values(component=COMPONENT, version=SCHEMA_VERSION))
                logger.info("created Urza schema version %d in %s", SCHEMA_VERSION, self.safe_url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("Urza needs a SQLite file (several connections share it), not an in-memory database")
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writes can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY at once
        # (no retry is possible inside it); IMMEDIATE takes the write lock up front.
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _is_transient(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


@contextlib.contextmanager
def _unavailable_on_connect(engine: Engine) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig).lower()
        if exc.connection_invalidated or "connect" in detail or "database is locked" in detail:
            raise Unavailable(f"database unreachable: {exc.orig}") from exc
        raise
