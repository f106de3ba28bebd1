"""One subscription on JetStream: durable pull consumers, handled in priority order.

Each subject of the `ConsumerSpec` is a durable pull consumer of its own (a
priority level). The loop runs on the bus's event loop: it asks the higher
levels whether anything waits (consumer info, one cheap request) and fetches
from the highest level that has messages; the lowest level is long-polled one
message at a time, so at most one lower-priority message is ever ahead of a
newly arrived emergency. A single-level subscription fetches in batches.

The handler runs on the subscription's own worker thread while the loop keeps
the message alive with in-progress acks. Returning acks; raising naks (retry
after `redelivery_delay_seconds`) until the last allowed delivery, which goes to
the dead letters instead; a rejected envelope goes there at once. A message
whose last delivery is never acked (the process died) is rescued from the
MAX_DELIVERIES advisory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from esper.oona.api import ConsumerSpec, Handler
from esper.oona.config import OonaConfig
from esper.oona.counters import BusCounters
from esper.oona.dead_letters import DeadLetterQueue, advisory_subject
from esper.oona.envelope import DeadLetterReason, OpenedEnvelope, RejectedEnvelope, open_envelope
from esper.oona.seen import SeenKeys, Verdict, digest, seen_keys_for
from esper.oona.streams import consumer_config, ensure_consumer
from esper.oona.subjects import stream_for_filter
from esper.oona.tracing import handle_traced

logger = logging.getLogger(__name__)


class PullConsumer:
    def __init__(
        self,
        *,
        nc: Client,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: Handler,
        config: OonaConfig,
        counters: BusCounters,
        dead_letters: DeadLetterQueue,
        connected: asyncio.Event,
    ) -> None:
        self.spec = spec
        self._nc = nc
        self._js = js
        self._handler = handler
        self._config = config
        self._counters = counters
        self._dead_letters = dead_letters
        self._connected = connected
        prefix = config.dead_letter_prefix
        self._streams = [stream_for_filter(config.streams, s, prefix).name for s in spec.subjects]
        self._levels: list[JetStreamContext.PullSubscription] = []
        self._advisories: list[CoreSubscription] = []
        self._seen: SeenKeys = seen_keys_for(config, spec.durable)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"oona-{spec.durable}")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for level, subject in enumerate(self.spec.subjects):
            name, stream = self.spec.level_name(level), self._streams[level]
            await ensure_consumer(self._js, stream, consumer_config(name, subject, self._config))
            self._levels.append(await self._js.pull_subscribe_bind(durable=name, stream=stream))
            self._advisories.append(
                await self._nc.subscribe(advisory_subject(stream, name), cb=self._dead_letters.rescue)
            )
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"oona-consume-{self.spec.durable}")

    async def stop(self) -> None:
        """Stop fetching. A handler still running is abandoned: its message is redelivered after ack_wait."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for level_subscription in self._levels:
            with contextlib.suppress(NatsError, TimeoutError):
                await level_subscription.unsubscribe()
        for advisory_subscription in self._advisories:
            with contextlib.suppress(NatsError, TimeoutError):
                await advisory_subscription.unsubscribe()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for level in range(len(self.spec.subjects)):
            self._counters.forget_depth((self.spec.durable, level))
        self._seen.close()

    async def _run(self) -> None:
        while True:
            await self._connected.wait()
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except NotFoundError:
                logger.warning("oona: consumer %s vanished; creating it again", self.spec.durable)
                await self._recreate()
            except (NatsError, TimeoutError, OSError) as error:
                logger.debug("oona: fetch for %s failed: %r", self.spec.durable, error)
                await asyncio.sleep(self._config.reconnect_wait_seconds)
            except Exception:
                logger.exception("oona: consumer %s failed; retrying", self.spec.durable)
                await asyncio.sleep(self._config.reconnect_wait_seconds)

    async def _poll(self) -> None:
        """Handle messages from the highest level that has some, else long-poll the lowest."""
        last = len(self._levels) - 1
        for level in range(last):
            info = await self._levels[level].consumer_info()
            self._counters.set_depth((self.spec.durable, level), info.num_pending or 0)
            if (info.num_pending or 0) + (info.num_ack_pending or 0) > 0:
                probe = self._config.priority_probe_seconds
                batch = await self._fetch(level, self._config.fetch_batch, probe)
                if batch:
                    await self._handle_batch(level, batch)
                    return
        batch_size = self._config.fetch_batch if last == 0 else 1
        batch = await self._fetch(last, batch_size, self._config.fetch_wait_seconds)
        await self._handle_batch(last, batch)

    async def _fetch(self, level: int, batch: int, wait: float) -> list[Msg]:
        try:
            return await self._levels[level].fetch(batch, timeout=wait)
        except TimeoutError:  # nothing arrived in time (nats' TimeoutError is an asyncio one)
            self._counters.set_depth((self.spec.durable, level), 0)
            return []

    async def _handle_batch(self, level: int, batch: list[Msg]) -> None:
        key = (self.spec.durable, level)
        for index, msg in enumerate(batch):
            self._counters.set_depth(key, msg.metadata.num_pending + len(batch) - index)
            await self._handle(msg)
        if batch:
            self._counters.set_depth(key, batch[-1].metadata.num_pending)

    async def _handle(self, msg: Msg) -> None:
        config = self._config
        delivered = msg.metadata.num_delivered
        try:
            opened = open_envelope(
                msg.data,
                secret=config.hmac_secret,
                accepted_schema_version=config.schema_version,
                key_id=config.hmac_key_id,
                subject=msg.subject,
                stored_time_ns=_stored_ns(msg),
                max_age_seconds=config.max_age_seconds,
            )
        except RejectedEnvelope as rejected:
            await self._dead_letter(msg, rejected.reason, rejected.detail)
            return
        sequence, data_digest = msg.metadata.sequence.stream, digest(msg.data)
        verdict = self._seen.verdict(opened.idempotency_key, sequence, data_digest)
        if verdict == Verdict.REPLAY:
            detail = f"idempotency key {opened.idempotency_key[:200]!r} was handled before in another message"
            await self._dead_letter(msg, DeadLetterReason.REPLAYED, detail)
            return
        if verdict == Verdict.REPEAT:
            self._counters.add("duplicates_dropped")
            await msg.ack()
            return
        if delivered > 1:
            self._counters.add("redelivered")
        try:
            await self._call_handler(msg, opened)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._counters.add("handler_failures")
            logger.warning(
                "oona: handler of %s failed on %s (delivery %d): %r", self.spec.durable, msg.subject, delivered, error
            )
            if delivered >= config.max_deliver:
                await self._dead_letter(msg, DeadLetterReason.MAX_DELIVERIES, repr(error))
            else:
                await msg.nak(delay=config.redelivery_delay_seconds or None)
            return
        self._seen.add(opened.idempotency_key, sequence, data_digest)
        self._counters.add("handled")
        await msg.ack()

    async def _call_handler(self, msg: Msg, opened: OpenedEnvelope) -> None:
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, handle_traced, self._handler, opened, msg.subject, self.spec.durable
        )
        while True:
            done, _ = await asyncio.wait({future}, timeout=self._config.ack_wait_seconds / 2)
            if done:
                future.result()
                return
            with contextlib.suppress(NatsError, TimeoutError):
                await msg.in_progress()

    async def _dead_letter(self, msg: Msg, reason: DeadLetterReason, detail: str) -> None:
        metadata = msg.metadata
        stored = await self._dead_letters.send(
            subject=msg.subject,
            data=msg.data,
            headers=msg.headers,
            stream=metadata.stream,
            sequence=metadata.sequence.stream,
            reason=reason,
            detail=detail,
        )
        if stored:
            await msg.term()
        else:
            await msg.nak(delay=self._config.redelivery_delay_seconds or None)

    async def _recreate(self) -> None:
        for level, subject in enumerate(self.spec.subjects):
            name, stream = self.spec.level_name(level), self._streams[level]
            with contextlib.suppress(NatsError, TimeoutError):
                await ensure_consumer(self._js, stream, consumer_config(name, subject, self._config))
        await asyncio.sleep(self._config.reconnect_wait_seconds)


def _stored_ns(msg: Msg) -> int | None:
    """When JetStream stored the message, in nanoseconds since the epoch (None if it does not say)."""
    stamp = msg.metadata.timestamp
    return int(stamp.timestamp() * 1e9) if stamp is not None else None
