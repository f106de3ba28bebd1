"""Configuration of Nissa's trace parts: the span store and the OTLP forwarder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from esper import checks

DEFAULT_DB = ".esper/nissa/spans.db"
DEFAULT_MAX_SPANS = 100_000
MEMORY_DB = ":memory:"


def database_url(db: str) -> str:
    """`--db` as a SQLAlchemy URL: a URL as given, ":memory:" as an in-memory SQLite, else a SQLite file."""
    if "://" in db:
        return db
    if db == MEMORY_DB:
        return "sqlite://"
    return f"sqlite:///{Path(db).expanduser().resolve()}"


@dataclass(frozen=True)
class SpanStoreConfig:
    """Where spans are kept and how many at most.

    `url` is a SQLAlchemy URL: `sqlite:///FILE`, `sqlite://` (in memory, for tests)
    or `postgresql+psycopg://...`. Past `max_spans`, whole traces are evicted, oldest first.
    """

    url: str = f"sqlite:///{DEFAULT_DB}"
    max_spans: int = DEFAULT_MAX_SPANS

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("url must be set")
        checks.positive("max_spans", self.max_spans)


@dataclass(frozen=True)
class ForwarderConfig:
    """Where accepted OTLP exports are sent on, and how hard Nissa tries.

    `endpoint` is `host:port` or `http(s)://host:port`. At most `queue_size` exports
    wait; each is tried `attempts` times (`timeout_seconds` each, `backoff_seconds`
    doubling between tries) and then dropped and counted.
    """

    endpoint: str
    queue_size: int = 1000
    attempts: int = 3
    timeout_seconds: float = 5.0
    backoff_seconds: float = 0.2

    def __post_init__(self) -> None:
        if not self.endpoint:
            raise ValueError("endpoint must be set")
        checks.positive("queue_size", self.queue_size)
        checks.positive("attempts", self.attempts)
        checks.positive("timeout_seconds", self.timeout_seconds)
        checks.non_negative("backoff_seconds", self.backoff_seconds)


@dataclass(frozen=True)
class SpanLimits:
    """What one OTLP export and one span may hold.

    An export with more than `max_spans_per_export` spans or over `max_export_bytes` is
    refused whole (RESOURCE_EXHAUSTED, not worth retrying). Within a span, attributes
    past `max_attributes` are dropped, and names, keys and values are cut to their
    limits; every cut is counted (esper_nissa_span_parts_dropped_total).
    """

    max_spans_per_export: int = 10_000
    max_export_bytes: int = 16 * 1024 * 1024
    max_attributes: int = 128
    max_name_chars: int = 256
    max_key_chars: int = 128
    max_value_chars: int = 4096
    max_status_chars: int = 1024

    def __post_init__(self) -> None:
        for name in (
            "max_spans_per_export",
            "max_export_bytes",
            "max_attributes",
            "max_name_chars",
            "max_key_chars",
            "max_value_chars",
            "max_status_chars",
        ):
            checks.positive(name, getattr(self, name))
