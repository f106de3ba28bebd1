"""Fan-out of seed telemetry to StreamTelemetry subscribers, as epochs end."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator

from esper.leyline.v1 import kasmina_pb2, telemetry_pb2

logger = logging.getLogger(__name__)

DEFAULT_BACKLOG = 10_000


class TelemetryStream(Iterator[kasmina_pb2.StreamTelemetryResponse]):
    """One subscriber's reports, in publication order. `close()` (any thread) ends the iteration.

    A subscriber that falls more than `backlog` reports behind loses the oldest ones.
    """

    def __init__(self, seed_ids: frozenset[str], backlog: int = DEFAULT_BACKLOG) -> None:
        self._seed_ids = seed_ids
        self._pending: deque[telemetry_pb2.SeedTelemetry] = deque(maxlen=backlog)
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0

    def offer(self, report: telemetry_pb2.SeedTelemetry) -> None:
        if self._seed_ids and report.seed_id not in self._seed_ids:
            return
        with self._ready:
            if self._closed:
                return
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(report)
            self._ready.notify_all()

    def close(self) -> None:
        """End the stream once the reports already queued are read."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> TelemetryStream:
        return self

    def __next__(self) -> kasmina_pb2.StreamTelemetryResponse:
        with self._ready:
            while not self._pending and not self._closed:
                self._ready.wait()
            if not self._pending:
                raise StopIteration
            report = self._pending.popleft()
        return kasmina_pb2.StreamTelemetryResponse(telemetry=report)


class TelemetryHub:
    """Subscribers of a run's telemetry; `publish` hands each new report to every open stream."""

    def __init__(self, backlog: int = DEFAULT_BACKLOG) -> None:
        self._backlog = backlog
        self._streams: list[TelemetryStream] = []
        self._lock = threading.Lock()
        self._closed = False

    def subscribe(self, seed_ids: Iterable[str] = ()) -> TelemetryStream:
        stream = TelemetryStream(frozenset(seed_ids), self._backlog)
        with self._lock:
            self._streams = [open_stream for open_stream in self._streams if not open_stream.closed]
            if self._closed:
                stream.close()
            else:
                self._streams.append(stream)
        return stream

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return sum(1 for stream in self._streams if not stream.closed)

    def publish(self, reports: Iterable[telemetry_pb2.SeedTelemetry]) -> None:
        with self._lock:
            streams = [stream for stream in self._streams if not stream.closed]
            self._streams = streams
        for report in reports:
            for stream in streams:
                stream.offer(report)

    def close(self) -> None:
        """The run ended: every stream ends after its queued reports."""
        with self._lock:
            self._closed = True
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()
