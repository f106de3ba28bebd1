"""The JetStream sender: drains the `Outbox` in order, pipelined, on the bus's event loop.

Messages are published as core NATS requests whose replies (JetStream PubAcks)
arrive on one wildcard inbox of this sender, `publish_window` at a time: the same
protocol as nats-py's `publish_async`, with a counter for reply subjects and a
quick look at the ack instead of a future and a JSON parse per message, which is
what makes batched publishing fast in Python.

A batch settles as a prefix: messages up to the first one without a good answer
are done (published, or refused for good and dropped); that one and everything
after it go back to the front of the outbox and are sent again later with the
same `Nats-Msg-Id`, so a message that did land is not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError

from esper.oona.api import AlertKind
from esper.oona.config import OonaConfig
from esper.oona.counters import Alerts, BusCounters
from esper.oona.envelope import restamped
from esper.oona.outbox import Outbox, OutgoingMessage

logger = logging.getLogger(__name__)

_NO_RESPONDERS = "503"
_DUPLICATE = re.compile(rb'"duplicate":\s*true')


@dataclass(frozen=True, slots=True)
class Answer:
    """JetStream's answer to one publish."""

    stored: bool
    duplicate: bool = False
    no_stream: bool = False  # nobody answered: the stream is missing (a server that lost its store)
    error: str = ""  # why JetStream refused it for good


def read_answer(msg: Msg) -> Answer:
    if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
        return Answer(stored=False, no_stream=True)
    data = msg.data
    if b'"error"' not in data:
        return Answer(stored=True, duplicate=_DUPLICATE.search(data) is not None)
    try:
        error = json.loads(data)["error"]
        code, description = int(error.get("code", 0)), str(error.get("description", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Answer(stored=False, error=f"unreadable answer {data[:200]!r}")
    if code == int(_NO_RESPONDERS):  # JetStream temporarily unavailable: retry
        return Answer(stored=False, no_stream=True)
    return Answer(stored=False, error=f"{code} {description}")


class _Batch:
    def __init__(self, size: int) -> None:
        self.answers: list[Answer | None] = [None] * size
        self.waiting = size
        # A bare future and a timer: cheaper than an Event under wait_for, which matters per message.
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reply_ids: list[int] = []

    def answer(self, index: int, answer: Answer) -> None:
        if self.answers[index] is None:
            self.answers[index] = answer
            self.waiting -= 1
            if self.waiting == 0:
                self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Sender:
    def __init__(
        self,
        nc: Client,
        outbox: Outbox,
        config: OonaConfig,
        counters: BusCounters,
        alerts: Alerts,
        connected: asyncio.Event,
        ensure_streams: Callable[[], Awaitable[None]],
    ) -> None:
        self.wake = asyncio.Event()
        self._nc = nc
        self._outbox = outbox
        self._config = config
        self._counters = counters
        self._alerts = alerts
        self._connected = connected
        self._ensure_streams = ensure_streams
        self._prefix = nc.new_inbox() + "."
        self._waiting: dict[int, tuple[_Batch, int]] = {}
        self._next_reply = 0
        self._inbox: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._inbox = await self._nc.subscribe(self._prefix + "*", cb=self._on_answer)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="oona-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inbox is not None:
            with contextlib.suppress(NatsError, TimeoutError):
                await self._inbox.unsubscribe()

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            batch = self._outbox.take(self._config.publish_window)
            if not batch:
                await self.wake.wait()
                continue
            if not self._connected.is_set():
                self._settle(0, batch)
                await self._connected.wait()
                continue
            try:
                settled = await self._send(batch)
            except asyncio.CancelledError:
                self._settle(0, batch)
                raise
            except Exception:
                logger.exception("oona: sending a batch failed")
                settled = 0
            self._settle(settled, batch[settled:])
            if settled < len(batch):
                # Unreachable or slow: pause before trying again (or waiting for the reconnect).
                await asyncio.sleep(self._config.reconnect_wait_seconds)

    async def _send(self, messages: list[OutgoingMessage]) -> int:
        """Publish pipelined, wait for the answers; returns how many (a prefix) are settled."""
        batch = _Batch(len(messages))
        try:
            await self._publish_all(messages, batch)
            if batch.waiting:
                timer = asyncio.get_running_loop().call_later(self._config.publish_timeout_seconds, batch.finish)
                try:
                    await batch.done
                finally:
                    timer.cancel()
        finally:
            for reply_id in batch.reply_ids:
                self._waiting.pop(reply_id, None)
        for index, (message, answer) in enumerate(zip(messages, batch.answers, strict=True)):
            if answer is None or answer.no_stream:
                if answer is not None:
                    await self._ensure_streams()
                return index
            if answer.stored:
                self._counters.add("published")
                if message.buffered:
                    self._counters.add("flushed")
                if answer.duplicate:
                    self._counters.add("publish_duplicates")
            else:
                self._counters.add("dropped")
                self._alerts.raise_alert(
                    AlertKind.PUBLISH_REJECTED, f"{message.subject}: {answer.error}", message.subject
                )
        return len(messages)

    async def _publish_all(self, messages: list[OutgoingMessage], batch: _Batch) -> None:
        for index, message in enumerate(messages):
            reply_id = self._next_reply
            self._next_reply += 1
            self._waiting[reply_id] = (batch, index)
            batch.reply_ids.append(reply_id)
            try:
                reply = f"{self._prefix}{reply_id}"
                headers = message.headers or None
                secret = self._config.hmac_secret
                if message.buffered and secret is not None:
                    # It waited for NATS: its publish time is now, or the stale check would refuse it.
                    message.data = restamped(message.data, secret, self._config.hmac_key_id)
                await self._nc.publish(message.subject, message.data, reply=reply, headers=headers)
            except MaxPayloadError as error:
                batch.answer(index, Answer(stored=False, error=repr(error)))
            except (NatsError, OSError) as error:
                logger.debug("oona: publish interrupted: %r", error)
                return  # the rest stays unanswered and goes back to the outbox

    async def _on_answer(self, msg: Msg) -> None:
        try:
            reply_id = int(msg.subject[len(self._prefix) :])
        except ValueError:
            return
        waiting = self._waiting.pop(reply_id, None)
        if waiting is not None:
            batch, index = waiting
            batch.answer(index, read_answer(msg))

    def _settle(self, sent: int, unsent: list[OutgoingMessage]) -> None:
        newly_buffered = self._outbox.settle(sent, unsent)
        if newly_buffered:
            self._counters.add("buffered", newly_buffered)
