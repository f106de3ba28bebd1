"""What a consumer has handled: idempotency keys with the stream message and the bytes that carried them.

Three verdicts for a delivery whose key was handled before:
- the same stream message again (a redelivery after a lost ack) or another publication
  under the key with other bytes (two publishers of one report, a retried publish that
  had landed): a repeat, dropped and acked as before;
- the very same bytes as a new stream message: a replay of a captured envelope (a
  signed one cannot be altered, only sent again), dead-lettered and counted.

Keys are kept in memory (the last `capacity`) and, with a file, on disk for `keep_seconds`,
so a replay is recognized after the consumer restarts too. Older keys need no record:
the envelope's time window refuses a replay that late.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from esper.oona.config import OonaConfig

_PRUNE_EVERY = 1000


class Verdict(StrEnum):
    NEW = "NEW"
    REPEAT = "REPEAT"
    REPLAY = "REPLAY"


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


class SeenKeys:
    """Thread-safe; `close()` releases the file."""

    def __init__(
        self,
        capacity: int,
        *,
        path: Path | None = None,
        keep_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._capacity = capacity
        self._keep = keep_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._added = 0
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, sequence INTEGER NOT NULL, "
                "digest BLOB NOT NULL, seen_at REAL NOT NULL)"
            )
            self._prune()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def verdict(self, key: str, sequence: int, data_digest: bytes) -> Verdict:
        found = self._lookup(key)
        if found is None:
            return Verdict.NEW
        seen_sequence, seen_digest = found
        if seen_sequence != sequence and seen_digest == data_digest:
            return Verdict.REPLAY
        return Verdict.REPEAT

    def add(self, key: str, sequence: int, data_digest: bytes) -> None:
        with self._lock:
            self._memory[key] = (sequence, data_digest)
            self._memory.move_to_end(key)
            while len(self._memory) > self._capacity:
                self._memory.popitem(last=False)
            if self._db is None:
                return
            self._db.execute(
                "INSERT OR REPLACE INTO seen (key, sequence, digest, seen_at) VALUES (?, ?, ?, ?)",
                (key, sequence, data_digest, self._clock()),
            )
            self._added += 1
            if self._added % _PRUNE_EVERY == 0:
                self._prune()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._memory)

    def _lookup(self, key: str) -> tuple[int, bytes] | None:
        with self._lock:
            found = self._memory.get(key)
            if found is not None or self._db is None:
                return found
            row = self._db.execute(
                "SELECT sequence, digest FROM seen WHERE key = ? AND seen_at >= ?", (key, self._clock() - self._keep)
            ).fetchone()
            return (int(row[0]), bytes(row[1])) if row is not None else None

    def _prune(self) -> None:
        assert self._db is not None
        self._db.execute("DELETE FROM seen WHERE seen_at < ?", (self._clock() - self._keep,))


def seen_keys_for(config: OonaConfig, durable: str) -> SeenKeys:
    """The record of one durable consumer: on disk under `config.state_dir` when it has one."""
    path = Path(config.state_dir) / f"seen-{durable}.sqlite" if config.state_dir else None
    # Twice the window: a replay later than that is refused as stale before the record is asked.
    return SeenKeys(config.dedup_cache_size, path=path, keep_seconds=2 * config.max_age_seconds)
