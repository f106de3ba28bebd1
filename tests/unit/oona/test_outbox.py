"""The bounded local publish buffer: lanes, order across failures, bounds, waking the sender."""

from __future__ import annotations

import threading

from esper.oona.outbox import Outbox, OutgoingMessage


def message(name: str, *, emergency: bool = False) -> OutgoingMessage:
    return OutgoingMessage(f"esper.telemetry.{name}", name.encode(), {}, emergency=emergency)


def test_emergency_lane_is_taken_first_and_each_lane_keeps_its_order() -> None:
    outbox = Outbox(capacity=10)
    for name in ("n1", "n2"):
        outbox.offer(message(name))
    outbox.offer(message("e1", emergency=True))
    outbox.offer(message("n3"))
    assert [m.data for m in outbox.take(10)] == [b"e1", b"n1", b"n2", b"n3"]


def test_unsent_messages_go_back_to_the_front_in_order_and_are_counted_buffered_once() -> None:
    outbox = Outbox(capacity=10)
    for name in ("a", "b", "c", "d"):
        outbox.offer(message(name))
    batch = outbox.take(3)
    assert outbox.settle(1, batch[1:]) == 2  # b and c newly buffered
    assert len(outbox) == 3
    again = outbox.take(10)
    assert [m.data for m in again] == [b"b", b"c", b"d"]
    assert outbox.settle(0, again) == 1  # only d is new; b and c were counted already
    assert [m.data for m in outbox.take(10)] == [b"b", b"c", b"d"]


def test_a_full_lane_refuses_without_blocking_and_leaves_the_other_lane_open() -> None:
    outbox = Outbox(capacity=2)
    assert outbox.offer(message("a")).accepted
    assert outbox.offer(message("b")).accepted
    assert not outbox.offer(message("c")).accepted
    assert outbox.offer(message("e", emergency=True)).accepted
    assert len(outbox) == 3


def test_the_idle_sender_is_woken_once() -> None:
    outbox = Outbox(capacity=10)
    assert outbox.take(5) == []  # sender finds nothing: idle
    assert outbox.offer(message("a")).wake_sender
    assert not outbox.offer(message("b")).wake_sender
    assert len(outbox.take(5)) == 2


def test_wait_empty_returns_when_everything_is_settled_or_on_timeout() -> None:
    outbox = Outbox(capacity=10)
    outbox.offer(message("a"))
    batch = outbox.take(5)
    assert not outbox.wait_empty(0.01)
    settler = threading.Timer(0.05, outbox.settle, args=(1, []))
    settler.start()
    assert outbox.wait_empty(10.0)
    settler.join()
    assert batch and len(outbox) == 0
