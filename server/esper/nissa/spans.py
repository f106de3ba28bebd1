"""Nissa's span store: received spans in SQL, bounded, found by run, seed or command id.

SQLite by default (a file, or in memory for tests), PostgreSQL when deployed. Each
span keeps its string attributes as JSON plus indexed columns for the esper.* ids;
a trace matches a query when any of its spans carries the id. Past `max_spans`
whole traces are evicted, the earliest-started first, so a stored trace is never
missing spans because of the bound. One lock serializes every use of the store.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.pool import StaticPool

from esper import checks
from esper.nissa.config import SpanStoreConfig
from esper.observability import metrics
from esper.sqlstore import Schema, SqlDatabase

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RUN_ID = "esper.run_id"
SEED_ID = "esper.seed_id"
COMMAND_ID = "esper.command_id"
# Span attribute -> indexed column.
INDEXED_ATTRIBUTES: Mapping[str, str] = {RUN_ID: "run_id", SEED_ID: "seed_id", COMMAND_ID: "command_id"}
MAX_INDEXED_ID_LENGTH = 256
# Keeps IN (...) lists under every SQLite build's bound-parameter limit.
_CHUNK = 500

metadata = MetaData()

traces = Table(
    "nissa_traces",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    # Earliest start among its stored spans: orders traces (newest first) and eviction (oldest first).
    Column("start_ns", BigInteger, nullable=False),
    Column("span_count", Integer, nullable=False),
    Index("ix_nissa_traces_start", "start_ns", "trace_id"),
)

spans = Table(
    "nissa_spans",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("service_name", Text, nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("kind", Integer, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("status_message", Text, nullable=False),
    # String attributes as a JSON object.
    Column("attributes", Text, nullable=False),
    Column("run_id", String(MAX_INDEXED_ID_LENGTH), nullable=True),
    Column("seed_id", String(MAX_INDEXED_ID_LENGTH), nullable=True),
    Column("command_id", String(MAX_INDEXED_ID_LENGTH), nullable=True),
    UniqueConstraint("trace_id", "span_id", name="uq_nissa_spans_trace_span"),
    Index("ix_nissa_spans_run", "run_id"),
    Index("ix_nissa_spans_seed", "seed_id"),
    Index("ix_nissa_spans_command", "command_id"),
)


@dataclass(frozen=True)
class StoredSpan:
    """One span as Nissa keeps it. Ids are lower-case hex; a root span's parent id is empty."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service_name: str
    start_ns: int
    end_ns: int
    kind: int = 0
    status_code: int = 0
    status_message: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredTrace:
    """One trace: its spans ordered by start time."""

    trace_id: str
    spans: tuple[StoredSpan, ...]


@dataclass(frozen=True)
class AddResult:
    """What one `add` did: spans stored, repeats ignored, spans and traces evicted to stay bounded."""

    stored: int
    duplicates: int
    evicted_spans: int
    evicted_traces: int
    # Spans in the store once this add committed.
    total: int


class SpanDatabase(SqlDatabase):
    """The span tables; also opens an in-memory SQLite (one shared connection), which tests use."""

    schema = Schema(
        component="nissa_spans",
        title="Nissa span store",
        version=SCHEMA_VERSION,
        metadata=metadata,
        marker_tables=("nissa_spans", "nissa_traces"),
        lock_key=0x6E697373,
    )

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database not in (None, "", ":memory:"):
            super().__init__(url)
            return
        self.url = url
        self.dialect = "sqlite"
        self.is_sqlite = True
        self.is_postgres = False
        # Every connection to "sqlite://" would be a new empty database: keep exactly one.
        self.engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})


class SpanStore:
    """Bounded, thread-safe span storage: `add` spans, `find_traces` by esper ids."""

    def __init__(self, database: SpanDatabase, max_spans: int) -> None:
        checks.positive("max_spans", max_spans)
        self._db = database
        self._max_spans = max_spans
        self._lock = threading.Lock()
        self._evicted_spans = 0
        self._evicted_traces = 0

    @classmethod
    def open(cls, config: SpanStoreConfig) -> SpanStore:
        """The store at `config.url`, its tables created if missing."""
        store = cls(SpanDatabase.open(config.url), config.max_spans)
        metrics.NISSA_SPANS_STORED.set(store.count())
        return store

    @property
    def safe_url(self) -> str:
        """Where the spans are, with any password hidden."""
        return self._db.safe_url

    @property
    def max_spans(self) -> int:
        return self._max_spans

    @property
    def evicted_spans(self) -> int:
        """Spans evicted since this store was opened."""
        return self._evicted_spans

    @property
    def evicted_traces(self) -> int:
        """Traces evicted since this store was opened."""
        return self._evicted_traces

    def add(self, new_spans: Sequence[StoredSpan]) -> AddResult:
        """Store `new_spans` in one transaction (a span already stored is ignored), then evict
        whole oldest traces until at most max_spans remain."""
        first_of_each: dict[tuple[str, str], StoredSpan] = {}
        for span in new_spans:
            first_of_each.setdefault((span.trace_id, span.span_id), span)
        unique = list(first_of_each.values())
        with self._lock:
            result = self._db.transact(lambda conn: self._add(conn, unique, len(new_spans)))
            self._evicted_spans += result.evicted_spans
            self._evicted_traces += result.evicted_traces
            metrics.NISSA_SPANS_EVICTED.inc(result.evicted_spans)
            metrics.NISSA_SPANS_STORED.set(result.total)
        if result.evicted_traces:
            logger.debug("evicted %d traces (%d spans)", result.evicted_traces, result.evicted_spans)
        return result

    def find_traces(
        self, *, run_id: str = "", seed_id: str = "", command_id: str = "", limit: int = 100
    ) -> list[StoredTrace]:
        """Traces with a span carrying each given id, newest first, at most `limit`, with all their spans."""
        conditions = [
            traces.c.trace_id.in_(select(spans.c.trace_id).where(spans.c[column] == value))
            for column, value in (("run_id", run_id), ("seed_id", seed_id), ("command_id", command_id))
            if value
        ]
        if not conditions:
            raise ValueError("find_traces needs at least one of run_id, seed_id, command_id")
        query = (
            select(traces.c.trace_id)
            .where(*conditions)
            .order_by(traces.c.start_ns.desc(), traces.c.trace_id.desc())
            .limit(limit)
        )
        with self._lock, self._db.read() as conn:
            trace_ids = list(conn.execute(query).scalars())
            found: dict[str, list[StoredSpan]] = {trace_id: [] for trace_id in trace_ids}
            for chunk in _chunks(trace_ids):
                rows = conn.execute(
                    select(spans).where(spans.c.trace_id.in_(chunk)).order_by(spans.c.start_ns, spans.c.seq)
                )
                for row in rows.mappings():
                    found[row["trace_id"]].append(_span_from_row(row))
        return [StoredTrace(trace_id, tuple(found[trace_id])) for trace_id in trace_ids]

    def count(self) -> int:
        """Spans stored now."""
        with self._lock, self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(spans)).scalar_one())

    def close(self) -> None:
        self._db.close()

    def _add(self, conn: Connection, new_spans: list[StoredSpan], received: int) -> AddResult:
        trace_ids = sorted({span.trace_id for span in new_spans})
        existing: set[tuple[str, str]] = set()
        for chunk in _chunks(trace_ids):
            rows = conn.execute(select(spans.c.trace_id, spans.c.span_id).where(spans.c.trace_id.in_(chunk)))
            existing.update((row.trace_id, row.span_id) for row in rows)
        fresh = [span for span in new_spans if (span.trace_id, span.span_id) not in existing]
        if fresh:
            conn.execute(insert(spans), [_row_from_span(span) for span in fresh])
            _count_into_traces(conn, fresh)
        total = int(conn.execute(select(func.coalesce(func.sum(traces.c.span_count), 0))).scalar_one())
        evicted_spans, evicted_traces = self._evict(conn, total - self._max_spans)
        return AddResult(
            stored=len(fresh),
            duplicates=received - len(fresh),
            evicted_spans=evicted_spans,
            evicted_traces=evicted_traces,
            total=total - evicted_spans,
        )

    def _evict(self, conn: Connection, excess: int) -> tuple[int, int]:
        """Delete the oldest traces holding at least `excess` spans; returns (spans, traces) deleted."""
        if excess <= 0:
            return 0, 0
        victims: list[str] = []
        freed = 0
        # Every trace holds at least one span, so `excess` traces always free enough.
        oldest_first = (
            select(traces.c.trace_id, traces.c.span_count).order_by(traces.c.start_ns, traces.c.trace_id).limit(excess)
        )
        for row in conn.execute(oldest_first).all():
            victims.append(row.trace_id)
            freed += int(row.span_count)
            if freed >= excess:
                break
        for chunk in _chunks(victims):
            conn.execute(delete(spans).where(spans.c.trace_id.in_(chunk)))
            conn.execute(delete(traces).where(traces.c.trace_id.in_(chunk)))
        return freed, len(victims)


def _count_into_traces(conn: Connection, fresh: list[StoredSpan]) -> None:
    """Add the new spans' counts and earliest starts to their traces' rows."""
    added: dict[str, tuple[int, int]] = {}
    for span in fresh:
        count, start = added.get(span.trace_id, (0, span.start_ns))
        added[span.trace_id] = (count + 1, min(start, span.start_ns))
    known: dict[str, int] = {}
    for chunk in _chunks(sorted(added)):
        rows = conn.execute(select(traces.c.trace_id, traces.c.start_ns).where(traces.c.trace_id.in_(chunk)))
        known.update((row.trace_id, int(row.start_ns)) for row in rows)
    new_rows = [
        {"trace_id": trace_id, "start_ns": start, "span_count": count}
        for trace_id, (count, start) in added.items()
        if trace_id not in known
    ]
    if new_rows:
        conn.execute(insert(traces), new_rows)
    for trace_id, (count, start) in added.items():
        if trace_id in known:
            conn.execute(
                update(traces)
                .where(traces.c.trace_id == trace_id)
                .values(span_count=traces.c.span_count + count, start_ns=min(start, known[trace_id]))
            )


def _row_from_span(span: StoredSpan) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "service_name": span.service_name,
        "start_ns": span.start_ns,
        "end_ns": span.end_ns,
        "kind": span.kind,
        "status_code": span.status_code,
        "status_message": span.status_message,
        "attributes": json.dumps(dict(span.attributes), sort_keys=True),
    }
    for attribute, column in INDEXED_ATTRIBUTES.items():
        row[column] = span.attributes.get(attribute) or None
    return row


def _span_from_row(row: RowMapping) -> StoredSpan:
    return StoredSpan(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        service_name=row["service_name"],
        start_ns=int(row["start_ns"]),
        end_ns=int(row["end_ns"]),
        kind=int(row["kind"]),
        status_code=int(row["status_code"]),
        status_message=row["status_message"],
        attributes=json.loads(row["attributes"]),
    )


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
