"""Simic's schema and database handle (SQLAlchemy 2.x Core).

SQLite (a file; WAL journal, busy timeout, writes in `BEGIN IMMEDIATE` so
concurrent writers queue instead of failing) by default, PostgreSQL through
`postgresql+psycopg://...` when deployed. A field report is stored at most once:
`report_id` is unique, so a repeat is refused by the database itself, across
processes and restarts. `seq` numbers reports in the order Simic stored them
(newest first = highest seq), which also makes paging stable while reports arrive.
Times are integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from esper.errors import FailedPrecondition, Unavailable

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COMPONENT = "simic"
MAX_ID_LENGTH = 256
# Arbitrary constant: serializes schema creation between processes sharing a PostgreSQL database.
_PG_SCHEMA_LOCK = 0x73696D63
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "esper_write"

metadata = MetaData()

# Shared with other components' schemas in one database: one row per component.
schema_meta = Table(
    "schema_meta",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

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


class SimicDatabase:
    """The engine plus read and write transactions; `open()` checks or creates the schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self.engine = _sqlite_engine(url) if self.dialect == "sqlite" else create_engine(url, pool_pre_ping=True)

    @classmethod
    def open(cls, url: str) -> SimicDatabase:
        database = cls(url)
        try:
            database.ensure_schema()
        except BaseException:
            database.close()
            raise
        return database

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with _unavailable_on_connect(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes: all of it commits when the block ends, or none of it."""
        with _unavailable_on_connect(), self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def ensure_schema(self) -> None:
        """Create the tables in a database without them; refuse one with another schema version."""
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
            present = set(inspect(conn).get_table_names())
            stored = None
            if "schema_meta" in present:
                stored = conn.execute(
                    select(schema_meta.c.version).where(schema_meta.c.component == COMPONENT)
                ).scalar_one_or_none()
            if stored is None and "field_reports" in present:
                raise FailedPrecondition(
                    f"database {self.safe_url} has a field_reports table but no Simic schema version; "
                    f"refusing to use it (expected schema version {SCHEMA_VERSION})",
                    reason="SCHEMA_VERSION_UNSUPPORTED",
                )
            if stored is not None and stored != SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"database {self.safe_url} holds Simic schema version {stored}, this server supports "
                    f"version {SCHEMA_VERSION}",
                    reason="SCHEMA_VERSION_UNSUPPORTED",
                )
            if stored is None:
                metadata.create_all(conn)
                conn.execute(schema_meta.insert().values(component=COMPONENT, version=SCHEMA_VERSION))
                logger.info("created Simic schema version %d in %s", SCHEMA_VERSION, self.safe_url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("Simic needs a SQLite file (several connections share it), not an in-memory database")
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
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY at once;
        # IMMEDIATE takes the write lock up front.
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextlib.contextmanager
def _unavailable_on_connect() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig).lower()
        if exc.connection_invalidated or "connect" in detail or "database is locked" in detail:
            raise Unavailable(f"database unreachable: {exc.orig}") from exc
        raise
