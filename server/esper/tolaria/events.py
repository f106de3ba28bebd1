"""A run's event stream: numbered gap-free from 1, fanned out to sinks (events.jsonl, streams)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from google.protobuf import timestamp_pb2

from esper.leyline.v1 import alert_pb2, control_pb2, run_pb2

EventSink = Callable[[run_pb2.RunEvent], None]


class RunEventLog:
    """Assigns sequence numbers and hands every event to each sink, in order.

    It also keeps the events in memory (they are small) so a late subscriber, such
    as a StreamRunEvents call, can replay from any sequence number and then follow.
    """

    def __init__(self, run_id: str, sinks: list[EventSink] | None = None) -> None:
        self.run_id = run_id
        self._sinks = list(sinks or [])
        self._events: list[run_pb2.RunEvent] = []
        self._closed = False
        self._changed = threading.Condition()

    def add_sink(self, sink: EventSink, *, replay: bool = False) -> None:
        """Hand every later event to `sink`; with `replay`, first the events already recorded, in order."""
        with self._changed:
            if replay:
                for event in self._events:
                    sink(event)
            self._sinks.append(sink)

    def emit(self, **payload: Any) -> run_pb2.RunEvent:
        """Record one event; `payload` is exactly one RunEvent oneof field, e.g. notice="..."."""
        with self._changed:
            event = run_pb2.RunEvent(run_id=self.run_id, sequence=len(self._events) + 1, **payload)
            event.event_time.GetCurrentTime()
            self._events.append(event)
            for sink in self._sinks:
                sink(event)
            self._changed.notify_all()
        return event

    def notice(self, text: str) -> run_pb2.RunEvent:
        return self.emit(notice=text)

    def transition(self, transition: run_pb2.SeedTransition) -> run_pb2.RunEvent:
        return self.emit(seed_transition=transition)

    def decision(self, decision: control_pb2.AdaptationDecision) -> run_pb2.RunEvent:
        return self.emit(decision=decision)

    def field_report(self, report: control_pb2.FieldReport) -> run_pb2.RunEvent:
        return self.emit(field_report=report)

    def alert(self, alert: alert_pb2.Alert) -> run_pb2.RunEvent:
        return self.emit(alert=alert)

    def close(self) -> None:
        """The run ended: followers stop after the last event."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def events(self) -> list[run_pb2.RunEvent]:
        with self._changed:
            return list(self._events)


def timestamp_now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp
