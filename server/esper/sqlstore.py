"""A component's SQL database: engine, transactions and schema version check (SQLAlchemy 2.x Core).

SQLite (a file; WAL journal, busy timeout, write transactions taken with
`BEGIN IMMEDIATE` so concurrent writers queue instead of failing) by default,
PostgreSQL through `postgresql+psycopg://...` when deployed. Several components
may share one database: each records its schema version in `schema_meta`, one row
per component, and checks it before use. A database at an older version is brought
up to date by the component's migrations, one version at a time, in the transaction
that checks the version.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
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
from sqlalchemy.exc import DBAPIError, OperationalError

from esper.errors import FailedPrecondition, Unavailable

logger = logging.getLogger(__name__)

_SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "esper_write"
# PostgreSQL aborts one of two deadlocked transactions; retrying it succeeds.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
T = TypeVar("T")

# Shared by every component's schema in one database: one row per component.
schema_meta = Table(
    "schema_meta",
    MetaData(),
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)


@dataclass(frozen=True)
class Schema:
    """What one component keeps in the database and how its presence is recognised."""

    component: str  # its key in schema_meta, e.g. "urza"
    title: str  # how messages name it, e.g. "Urza"
    version: int
    metadata: MetaData
    # Tables that, present without a recorded version, mean the database was used by something else.
    marker_tables: Collection[str]
    # PostgreSQL advisory lock key: serializes schema creation between processes sharing the database.
    lock_key: int
    sqlite_foreign_keys: bool = False
    # From-version -> the step that brings a database at that version to the next one.
    migrations: Mapping[int, Callable[[Connection], None]] = dataclass_field(default_factory=dict)


class SqlDatabase:
    """The engine plus read and write transactions; `open()` checks or creates the schema.

    A component subclasses it and sets `schema`.
    """

    schema: ClassVar[Schema]

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.is_postgres = self.dialect == "postgresql"
        if not (self.is_sqlite or self.is_postgres):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, title=self.schema.title, foreign_keys=self.schema.sqlite_foreign_keys)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)

    @classmethod
    def open(cls, url: str) -> Self:
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
        with _unavailable_on_connect(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; all of it commits when the block ends, or none of it does."""
        with _unavailable_on_connect(), self.engine.connect() as conn:
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
        """Create the tables in a database without them; refuse one with another schema version."""
        schema = self.schema
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": schema.lock_key})
            present = set(inspect(conn).get_table_names())
            stored = None
            if schema_meta.name in present:
                stored = conn.execute(
                    select(schema_meta.c.version).where(schema_meta.c.component == schema.component)
                ).scalar_one_or_none()
            found = sorted(present.intersection(schema.marker_tables))
            if stored is None and found:
                raise FailedPrecondition(
                    f"database {self.safe_url} has {schema.title} tables ({', '.join(found)}) but no recorded "
                    f"{schema.title} schema version; refusing to use it "
                    f"(expected schema version {schema.version})",
                    reason="SCHEMA_VERSION_UNSUPPORTED",
                )
            if stored is not None and stored < schema.version and _can_migrate(schema, stored):
                for version in range(stored, schema.version):
                    schema.migrations[version](conn)
                    logger.info("migrated %s schema %d -> %d in %s", schema.title, version, version + 1, self.safe_url)
                conn.execute(
                    schema_meta.update()
                    .where(schema_meta.c.component == schema.component)
                    .values(version=schema.version)
                )
                stored = schema.version
            if stored is not None and stored != schema.version:
                raise FailedPrecondition(
                    f"database {self.safe_url} holds {schema.title} schema version {stored}, this server "
                    f"supports version {schema.version}; migrate the database or use a matching server",
                    reason="SCHEMA_VERSION_UNSUPPORTED",
                )
            if stored is None:
                schema_meta.create(conn, checkfirst=True)
                schema.metadata.create_all(conn)
                conn.execute(schema_meta.insert().values(component=schema.component, version=schema.version))
                logger.info("created %s schema version %d in %s", schema.title, schema.version, self.safe_url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str, *, title: str, foreign_keys: bool) -> Engine:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError(f"{title} needs a SQLite file (several connections share it), not an in-memory database")
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writes can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        if foreign_keys:
            cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY at once
        # (no retry is possible inside it); IMMEDIATE takes the write lock up front.
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _can_migrate(schema: Schema, stored: int) -> bool:
    return all(version in schema.migrations for version in range(stored, schema.version))


def _is_transient(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


@contextlib.contextmanager
def _unavailable_on_connect() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig).lower()
        if exc.connection_invalidated or "connect" in detail or "database is locked" in detail:
            raise Unavailable(f"database unreachable: {exc.orig}") from exc
        raise
