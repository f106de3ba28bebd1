"""The bus interface domain code depends on (`Bus`), and the small types it uses.

Two implementations: `esper.oona.jetstream.JetStreamBus` (NATS JetStream, mesh
mode) and `esper.oona.memory.InProcessBus` (one process, `esper run`). Both are
synchronous, thread-safe objects, because domain code is synchronous (a training
loop):

- `publish` never blocks for long: it hands the envelope to the bus and returns.
  JetStream delivery is confirmed asynchronously; `flush(timeout)` waits for it.
- `subscribe` registers a durable consumer. Handlers of one subscription run one
  at a time, in delivery order: on JetStream on a worker thread owned by the
  subscription; in process in the thread that calls `flush` (or the bus's one
  worker thread), so tests are deterministic. Returning acks the message;
  raising retries it; after `max_deliver` failed deliveries it is dead-lettered.
  Envelopes that fail the checks of `open_envelope` (unknown type, newer schema,
  bad HMAC) are dead-lettered at once and never reach the handler. Delivery is
  at least once: a key handled recently is dropped, but handlers should still
  be idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from google.protobuf.message import Message

from esper.leyline.v1 import bus_pb2, lifecycle_pb2
from esper.oona.envelope import OpenedEnvelope

_DURABLE = re.compile(r"[A-Za-z0-9_-]{1,64}")

Handler = Callable[[OpenedEnvelope], None]


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer: its name and the subjects it takes, in priority order.

    With several subjects, a message on `subjects[0]` is always handled before one
    on `subjects[1]` that is waiting at the same time, and so on: a control
    consumer lists its emergency subject first (`subjects.command_subjects`).
    The durable name identifies the consumer's position across restarts and
    processes; processes sharing a name share the work.
    """

    durable: str
    subjects: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))
        if not _DURABLE.fullmatch(self.durable):
            raise ValueError(f"durable must match {_DURABLE.pattern}, got {self.durable!r}")
        if not self.subjects or len(set(self.subjects)) != len(self.subjects):
            raise ValueError(f"consumer {self.durable} needs distinct subjects, got {self.subjects}")

    def level_name(self, level: int) -> str:
        """The durable name of one priority level (a consumer of its own on JetStream)."""
        return self.durable if len(self.subjects) == 1 else f"{self.durable}_p{level}"


class AlertKind(StrEnum):
    BUFFER_FULL = "BUFFER_FULL"  # a publish was dropped: the local buffer is full
    PUBLISH_REJECTED = "PUBLISH_REJECTED"  # JetStream refused a message for good (e.g. too large)
    DEAD_LETTER = "DEAD_LETTER"
    CONSERVATIVE_ON = "CONSERVATIVE_ON"  # queue depth passed the threshold
    CONSERVATIVE_OFF = "CONSERVATIVE_OFF"
    DISCONNECTED = "DISCONNECTED"
    RECONNECTED = "RECONNECTED"


@dataclass(frozen=True)
class BusAlert:
    """Something an operator should know; the bus calls its alert sink with it (from any thread)."""

    kind: AlertKind
    message: str
    subject: str = ""


AlertSink = Callable[[BusAlert], None]


@dataclass(frozen=True)
class BusStats:
    """Counters since the bus started, and its current state.

    published: acknowledged by the bus (JetStream PubAck, or stored in process).
    publish_duplicates: publishes the bus recognized as repeats of a recent key.
    buffered: publishes that had to wait because the bus was unreachable; flushed:
    those of them published later. dropped: publishes lost to a full buffer or
    refused for good. pending_publish: waiting in the local buffer right now.
    handled: handler returned. handler_failures: handler raised. redelivered:
    deliveries after the first. duplicates_dropped: deliveries of a key already
    handled. dead_lettered: by DeadLetterReason value. queue_depth: messages waiting
    for this bus's consumers; queue_depths: the same by durable consumer name;
    conservative: queue_depth passed the threshold.
    """

    published: int = 0
    publish_duplicates: int = 0
    buffered: int = 0
    flushed: int = 0
    dropped: int = 0
    pending_publish: int = 0
    handled: int = 0
    handler_failures: int = 0
    redelivered: int = 0
    duplicates_dropped: int = 0
    dead_lettered: Mapping[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    queue_depths: Mapping[str, int] = field(default_factory=dict)
    conservative: bool = False
    connected: bool = True

    @property
    def dead_lettered_total(self) -> int:
        return sum(self.dead_lettered.values())


@dataclass(frozen=True)
class DeadLetter:
    """A message that left the normal flow: where it was going, its bytes, and why."""

    subject: str
    data: bytes
    reason: str
    detail: str


class Subscription(Protocol):
    def stop(self) -> None:
        """Stop taking messages; the durable consumer keeps its position for the next subscriber."""


class Bus(Protocol):
    """Oona as domain code sees it; see the module docstring for the delivery contract."""

    def seal(
        self,
        message: Message,
        *,
        source: str,
        priority: lifecycle_pb2.MessagePriority = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL,
        idempotency_key: str | None = None,
        trace_context: bus_pb2.TraceContext | None = None,
    ) -> bus_pb2.BusEnvelope:
        """An envelope for `message`, signed with this bus's secret when it has one."""
        ...

    def publish(self, subject: str, envelope: bus_pb2.BusEnvelope) -> None:
        """Hand an envelope to the bus; returns at once. InvalidArgument if no stream takes `subject`."""
        ...

    def subscribe(self, spec: ConsumerSpec, handler: Handler) -> Subscription: ...

    def flush(self, timeout: float) -> bool:
        """Push everything published so far through; False if `timeout` passed first.

        JetStream: every message is acknowledged by the server (stored). In process:
        every message is delivered to the handlers, or dead-lettered.
        """
        ...

    def stats(self) -> BusStats: ...

    def close(self) -> None: ...
