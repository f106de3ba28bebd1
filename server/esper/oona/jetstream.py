"""`JetStreamBus`: Oona on NATS JetStream, with a synchronous, thread-safe API.

The bus owns an asyncio loop in a background thread (`LoopThread`); the NATS
connection, the sender and every consumer live on it. From the caller's side:

- `publish` serializes the envelope, puts it in the bounded local buffer
  (`Outbox`) and returns: microseconds, never a network wait. The sender on the
  loop publishes buffered messages in order, pipelined (`publish_window` awaiting
  their PubAck at once), with `Nats-Msg-Id` = the envelope's idempotency key so
  JetStream drops repeats within its duplicate window. A message that is not
  acknowledged in `publish_timeout_seconds`, or finds NATS unreachable, goes back
  to the front of the buffer and is sent again after reconnecting (the same
  Nats-Msg-Id makes the retry harmless). A full buffer drops the new message,
  counts it and alerts; it never blocks.
- `flush(timeout)` waits until the buffer is empty (every message acknowledged).
- `subscribe` creates the durable consumers (see `esper.oona.consumer`) and
  returns at once; handlers run on a worker thread per subscription.

The connection reconnects forever (`reconnect_wait_seconds` apart); on every
reconnect the streams are ensured again before sending resumes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
from collections.abc import Iterator
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import APIError

from esper.errors import FailedPrecondition, Unavailable
from esper.leyline.v1 import bus_pb2, lifecycle_pb2
from esper.observability import metrics
from esper.oona.api import AlertKind, AlertSink, Bus, BusStats, ConsumerSpec, DeadLetter, Handler, Subscription
from esper.oona.config import OonaConfig
from esper.oona.consumer import PullConsumer
from esper.oona.counters import Alerts, BusCounters
from esper.oona.dead_letters import MSG_ID_HEADER, DeadLetterQueue
from esper.oona.envelope import ConfigSealing, sign_for_subject
from esper.oona.loop import LoopThread
from esper.oona.outbox import Outbox, OutgoingMessage
from esper.oona.sender import Sender
from esper.oona.streams import ensure_streams
from esper.oona.subjects import stream_for_subject

logger = logging.getLogger(__name__)


class JetStreamSubscription(Subscription):
    def __init__(self, bus: JetStreamBus, consumer: PullConsumer) -> None:
        self._bus = bus
        self._consumer = consumer

    def stop(self) -> None:
        self._bus._stop_consumer(self._consumer)


class JetStreamBus(ConfigSealing, Bus):
    """Oona on NATS JetStream. Call `start()` first; `close()` at the end (or use `with`)."""

    def __init__(self, config: OonaConfig, *, on_alert: AlertSink | None = None) -> None:
        self._config = config
        self._alerts = Alerts(on_alert)
        self._counters = BusCounters(config.conservative_queue_depth, self._alerts)
        self._outbox = Outbox(config.buffer_max_messages)
        self._known_subjects: set[str] = set()
        self._consumers: list[PullConsumer] = []
        self._thread: LoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._dead_letters: DeadLetterQueue | None = None
        self._connected: asyncio.Event | None = None
        self._sender: Sender | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._online = False
        self._buffer_full = False
        self._closed = False
        metrics.OONA.register(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> JetStreamBus:
        """Connect and ensure the streams; Unavailable if NATS cannot be reached in time."""
        if self._thread is not None:
            raise FailedPrecondition("the bus is already started")
        self._thread = LoopThread("oona-jetstream")
        try:
            with _domain_errors(f"connecting to NATS at {self._config.url}"):
                self._thread.run(self._connect(), self._config.start_timeout_seconds * 2)
        except BaseException:
            self._thread.stop(self._config.connect_timeout_seconds)
            self._closed = True
            raise
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (up to `timeout`), stop consumers and disconnect.

        A handler still running is abandoned (its message is redelivered to the next
        consumer after ack_wait); messages still buffered are lost and counted as dropped.
        """
        if self._closed or self._thread is None:
            self._closed = True
            metrics.OONA.unregister(self)
            return
        self._closed = True
        self.flush(timeout)
        thread = self._thread
        try:
            thread.run(self._shutdown(), timeout + self._config.request_timeout_seconds)
        except (TimeoutError, concurrent.futures.TimeoutError):
            logger.warning("oona: shutdown did not finish in time")
        lost = self._outbox.drop_all()
        if lost:
            self._counters.add("dropped", lost)
            logger.warning("oona: %d buffered messages were never published", lost)
        thread.stop(timeout)
        metrics.OONA.unregister(self)

    def __enter__(self) -> JetStreamBus:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Bus ---------------------------------------------------------------------------------

    def publish(self, subject: str, envelope: bus_pb2.BusEnvelope) -> None:
        thread = self._thread
        if thread is None or self._closed:
            raise FailedPrecondition("the bus is not started or already closed")
        if subject not in self._known_subjects:
            stream_for_subject(self._config.streams, subject)
            self._known_subjects.add(subject)
        if self._config.hmac_secret is not None:
            sign_for_subject(envelope, subject, self._config.hmac_secret, self._config.hmac_key_id)
        message = OutgoingMessage(
            subject,
            envelope.SerializeToString(),
            _headers(envelope),
            emergency=envelope.priority == lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY,
            buffered=not self._online,
        )
        offered = self._outbox.offer(message)
        if not offered.accepted:
            self._counters.add("dropped")
            if not self._buffer_full:
                self._buffer_full = True
                self._alerts.raise_alert(
                    AlertKind.BUFFER_FULL,
                    f"local buffer full ({self._config.buffer_max_messages} per lane); dropping publishes",
                    subject,
                )
            return
        self._buffer_full = False
        if message.buffered:
            self._counters.add("buffered")
        if offered.wake_sender and self._sender is not None:
            thread.call_soon(self._sender.wake.set)

    def subscribe(self, spec: ConsumerSpec, handler: Handler) -> JetStreamSubscription:
        """Create (or resume) the durable consumers and start handling; returns once they exist."""
        thread = self._require_running()
        with _domain_errors(f"subscribing {spec.durable}"):
            consumer = thread.run(self._subscribe(spec, handler), self._config.request_timeout_seconds * 2)
        return JetStreamSubscription(self, consumer)

    def flush(self, timeout: float = 10.0) -> bool:
        return self._outbox.wait_empty(timeout)

    def stats(self) -> BusStats:
        return self._counters.snapshot(pending_publish=len(self._outbox), connected=self._online)

    @property
    def conservative(self) -> bool:
        return self._counters.conservative

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters stored in the dead-letter stream."""
        thread = self._require_running()
        assert self._dead_letters is not None
        with _domain_errors("reading dead letters"):
            return thread.run(self._dead_letters.read(limit), self._config.request_timeout_seconds * 2)

    # -- on the loop -------------------------------------------------------------------------

    async def _connect(self) -> None:
        config = self._config
        self._connected = asyncio.Event()
        nc = Client()
        try:
            connecting = nc.connect(
                servers=[config.url],
                name=config.client_name,
                # nats-py annotates these as int but uses them as float seconds.
                connect_timeout=config.connect_timeout_seconds,  # type: ignore[arg-type]
                reconnect_time_wait=config.reconnect_wait_seconds,  # type: ignore[arg-type]
                allow_reconnect=True,
                max_reconnect_attempts=-1,  # reconnect forever; publishes wait in the buffer meanwhile
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                error_cb=self._on_error,
                **_tls_options(config),
            )
            await asyncio.wait_for(connecting, config.start_timeout_seconds)
            self._js = nc.jetstream(timeout=config.request_timeout_seconds)
            await ensure_streams(self._js, config)
        except BaseException:
            await nc.close()
            raise
        self._nc = nc
        self._dead_letters = DeadLetterQueue(self._js, config, self._counters, self._alerts)
        self._sender = Sender(
            nc,
            self._outbox,
            config,
            self._counters,
            self._alerts,
            self._connected,
            ensure_streams=self._ensure_streams_quietly,
        )
        await self._sender.start()
        self._set_online()

    async def _shutdown(self) -> None:
        for consumer in list(self._consumers):
            await consumer.stop()
        self._consumers.clear()
        if self._sender is not None:
            await self._sender.stop()
        if self._nc is not None:
            await self._nc.close()

    async def _subscribe(self, spec: ConsumerSpec, handler: Handler) -> PullConsumer:
        assert self._nc is not None and self._js is not None
        assert self._dead_letters is not None and self._connected is not None
        if any(consumer.spec.durable == spec.durable for consumer in self._consumers):
            raise FailedPrecondition(f"consumer {spec.durable} already has a subscriber on this bus")
        consumer = PullConsumer(
            nc=self._nc,
            js=self._js,
            spec=spec,
            handler=handler,
            config=self._config,
            counters=self._counters,
            dead_letters=self._dead_letters,
            connected=self._connected,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    def _stop_consumer(self, consumer: PullConsumer) -> None:
        async def stop() -> None:
            if consumer in self._consumers:
                self._consumers.remove(consumer)
                await consumer.stop()

        if self._thread is not None and not self._closed:
            self._thread.run(stop(), self._config.request_timeout_seconds)

    async def _ensure_streams_quietly(self) -> None:
        assert self._js is not None
        try:
            await ensure_streams(self._js, self._config)
        except (NatsError, TimeoutError, FailedPrecondition) as error:
            logger.warning("oona: could not ensure streams: %r", error)

    def _set_online(self) -> None:
        assert self._connected is not None and self._sender is not None
        self._online = True
        self._connected.set()
        self._sender.wake.set()

    async def _on_disconnected(self) -> None:
        if self._connected is not None and self._connected.is_set():
            self._online = False
            self._connected.clear()
            if not self._closed:
                self._alerts.raise_alert(AlertKind.DISCONNECTED, f"lost NATS at {self._config.url}")

    async def _on_reconnected(self) -> None:
        # Not inline: nats-py awaits this callback inside its reconnect routine.
        self._resuming = asyncio.get_running_loop().create_task(self._resume(), name="oona-resume")

    async def _resume(self) -> None:
        await self._ensure_streams_quietly()
        self._set_online()
        self._alerts.raise_alert(AlertKind.RECONNECTED, f"back on NATS at {self._config.url}")

    async def _on_error(self, error: Exception) -> None:
        logger.debug("oona: NATS client error: %r", error)

    def _require_running(self) -> LoopThread:
        if self._thread is None or self._closed:
            raise FailedPrecondition("the bus is not started or already closed")
        return self._thread


@contextlib.contextmanager
def _domain_errors(doing: str) -> Iterator[None]:
    """NATS failures as domain errors: JetStream refusals are FailedPrecondition, the rest Unavailable."""
    try:
        yield
    except APIError as error:
        raise FailedPrecondition(f"{doing}: JetStream refused: {error.description}") from error
    except (NatsError, TimeoutError, concurrent.futures.TimeoutError, OSError) as error:
        raise Unavailable(f"{doing}: NATS did not answer: {error!r}") from error


def _tls_options(config: OonaConfig) -> dict[str, Any]:
    """nats-py's TLS arguments for a config that names a CA (and a client identity)."""
    if config.tls_ca is None:
        return {}
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.tls_ca)
    if config.tls_cert is not None and config.tls_key is not None:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    return {"tls": context}


def _headers(envelope: bus_pb2.BusEnvelope) -> dict[str, str]:
    headers = {MSG_ID_HEADER: envelope.idempotency_key} if envelope.idempotency_key else {}
    if envelope.trace_context.traceparent:
        headers["traceparent"] = envelope.trace_context.traceparent
        if envelope.trace_context.tracestate:
            headers["tracestate"] = envelope.trace_context.tracestate
    return headers
