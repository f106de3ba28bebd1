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
