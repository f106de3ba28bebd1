"""The bounded local buffer between `publish` (any thread) and the JetStream sender (the bus loop).

Two lanes, emergency and normal, each holding at most `capacity` messages, so a
flood of telemetry can neither delay nor crowd out an emergency command. Within
a lane the order is the publish order, and a message that could not be sent goes
back to the front of its lane, so per-subject order survives an outage (a
subject carries one priority). Nothing here blocks: a full lane refuses the
message and the caller counts it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class OutgoingMessage:
    """One serialized envelope waiting for its JetStream acknowledgement."""

    subject: str
    data: bytes
    headers: dict[str, str]
    emergency: bool = False
    # True once the message had to wait for the bus to come back (counted once).
    buffered: bool = field(default=False)


@dataclass(frozen=True)
class Offered:
    accepted: bool
    wake_sender: bool


class Outbox:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lanes: tuple[deque[OutgoingMessage], deque[OutgoingMessage]] = (deque(), deque())
        self._in_flight = 0
        self._sender_idle = False
        self._changed = threading.Condition()

    def __len__(self) -> int:
        """Messages not yet acknowledged: queued and in flight."""
        with self._changed:
            return self._size()

    def offer(self, message: OutgoingMessage) -> Offered:
        """Queue a message unless its lane is full; say whether the idle sender needs waking."""
        lane = self._lanes[0 if message.emergency else 1]
        with self._changed:
            if len(lane) >= self._capacity:
                return Offered(accepted=False, wake_sender=False)
            lane.append(message)
            wake = self._sender_idle
            self._sender_idle = False
            return Offered(accepted=True, wake_sender=wake)

    def take(self, limit: int) -> list[OutgoingMessage]:
        """Up to `limit` messages, emergency lane first; they are in flight until `settle`.

        Empty means the sender is idle: the next `offer` asks for a wake-up.
        """
        with self._changed:
            taken: list[OutgoingMessage] = []
            for lane in self._lanes:
                while lane and len(taken) < limit:
                    taken.append(lane.popleft())
            self._in_flight += len(taken)
            self._sender_idle = not taken
            return taken

    def settle(self, sent: int, unsent: list[OutgoingMessage]) -> int:
        """Close a batch from `take`: `sent` left for good, `unsent` go back to the front in order.

        Returns how many of `unsent` are newly buffered (waiting on the bus for the first time).
        """
        newly_buffered = 0
        with self._changed:
            for message in reversed(unsent):
                if not message.buffered:
                    message.buffered = True
                    newly_buffered += 1
                self._lanes[0 if message.emergency else 1].appendleft(message)
            self._in_flight -= sent + len(unsent)
            if self._size() == 0:
                self._changed.notify_all()
        return newly_buffered

    def wait_empty(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._size() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def drop_all(self) -> int:
        """Forget every queued message (the bus is closing); returns how many were lost."""
        with self._changed:
            lost = sum(len(lane) for lane in self._lanes)
            for lane in self._lanes:
                lane.clear()
            if self._size() == 0:
                self._changed.notify_all()
            return lost

    def _size(self) -> int:
        return len(self._lanes[0]) + len(self._lanes[1]) + self._in_flight
