"""`InProcessBus`: Oona inside one process, for embedded runs (`esper run`) and tests.

Same contract as `JetStreamBus` (see `esper.oona.api`), same envelope checks,
same counters, no sockets. Streams keep their last `memory_retention_messages`
messages so a durable consumer created later replays them (work-queue streams
keep only what no consumer has taken). A repeated idempotency key within the
duplicate window is dropped at publish, as JetStream does.

Delivery is deterministic. By default nothing runs in the background: `flush()`
(or `deliver()`) delivers every pending message in the calling thread, in this
order: subscriptions round-robin, one message each, and within a subscription the
highest-priority subject first. A handler that raises is retried at once (no
redelivery delay in process) until `max_deliver`, then dead-lettered. With
`worker_thread=True` one background thread delivers continuously instead, and
`flush()` waits for it to be idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from esper.errors import FailedPrecondition
from esper.leyline.v1 import bus_pb2
from esper.observability import metrics
from esper.oona.api import AlertKind, AlertSink, Bus, BusStats, ConsumerSpec, DeadLetter, Handler, Subscription
from esper.oona.config import OonaConfig, StreamSpec
from esper.oona.counters import Alerts, BusCounters
from esper.oona.envelope import ConfigSealing, DeadLetterReason, RejectedEnvelope, open_envelope, sign_for_subject
from esper.oona.seen import SeenKeys, Verdict, digest, seen_keys_for
from esper.oona.subjects import dead_letter_subject, stream_for_filter, stream_for_subject, subject_matches
from esper.oona.tracing import handle_traced

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Delivery:
    seq: int
    subject: str
    data: bytes
    count: int = 0
    stored_ns: int = 0


@dataclass
class _Stream:
    spec: StreamSpec
    log: deque[_Delivery]
    recent_keys: dict[str, float] = field(default_factory=dict)

    def is_duplicate(self, key: str, now: float, window: float) -> bool:
        if not key:
            return False
        if len(self.recent_keys) > 4 * (self.log.maxlen or 1):
            self.recent_keys = {k: t for k, t in self.recent_keys.items() if now - t < window}
        seen = self.recent_keys.get(key)
        if seen is not None and now - seen < window:
            return True
        self.recent_keys[key] = now
        return False


@dataclass
class _Consumer:
    spec: ConsumerSpec
    levels: list[deque[_Delivery]]
    seen: SeenKeys
    handler: Handler | None = None

    def pending(self) -> int:
        return sum(len(level) for level in self.levels)


class _InProcessSubscription(Subscription):
    def __init__(self, bus: InProcessBus, durable: str) -> None:
        self._bus = bus
        self._durable = durable

    def stop(self) -> None:
        self._bus._unsubscribe(self._durable)


class InProcessBus(ConfigSealing, Bus):
    """The in-process bus. Thread-safe; see the module docstring for delivery order."""

    def __init__(
        self,
        config: OonaConfig,
        *,
        worker_thread: bool = False,
        on_alert: AlertSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        self._alerts = Alerts(on_alert)
        self._counters = BusCounters(config.conservative_queue_depth, self._alerts)
        retention = config.memory_retention_messages
        self._streams = [_Stream(spec, deque(maxlen=retention)) for spec in config.streams]
        self._consumers: dict[str, _Consumer] = {}
        self._dead_letters: deque[DeadLetter] = deque(maxlen=retention)
        # Sequences go on across restarts, as a stream's do: a record of handled messages outlives the bus.
        self._seq = time.time_ns()
        self._cursor = 0  # round-robin position over consumers
        self._busy = 0  # deliveries being handled right now
        self._closed = False
        self._work = threading.Condition(threading.RLock())
        self._delivering = threading.local()
        self._worker: threading.Thread | None = None
        if worker_thread:
            self._worker = threading.Thread(target=self._run_worker, name="oona-in-process", daemon=True)
            self._worker.start()
        metrics.OONA.register(self)

    def publish(self, subject: str, envelope: bus_pb2.BusEnvelope) -> None:
        stream = self._stream_for(subject)
        if self._config.hmac_secret is not None:
            sign_for_subject(envelope, subject, self._config.hmac_secret, self._config.hmac_key_id)
        data = envelope.SerializeToString()
        stored_ns = time.time_ns()
        with self._work:
            if self._closed:
                raise FailedPrecondition("the bus is closed")
            now = self._clock()
            if stream.is_duplicate(envelope.idempotency_key, now, self._config.duplicate_window_seconds):
                self._counters.add("publish_duplicates")
                return
            self._seq += 1
            taken = False
            for consumer in self._consumers.values():
                for level, pattern in zip(consumer.levels, consumer.spec.subjects, strict=True):
                    if subject_matches(pattern, subject):
                        level.append(_Delivery(self._seq, subject, data, stored_ns=stored_ns))
                        taken = True
                        self._counters.set_depth(consumer.spec.durable, consumer.pending())
            if not (stream.spec.work_queue and taken):
                stream.log.append(_Delivery(self._seq, subject, data, stored_ns=stored_ns))
            self._counters.add("published")
            self._work.notify_all()

    def subscribe(self, spec: ConsumerSpec, handler: Handler) -> _InProcessSubscription:
        for pattern in spec.subjects:
            stream_for_filter(self._config.streams, pattern, self._config.dead_letter_prefix)
        with self._work:
            if self._closed:
                raise FailedPrecondition("the bus is closed")
            consumer = self._consumers.get(spec.durable)
            if consumer is None:
                consumer = self._create_consumer(spec)
            elif consumer.spec != spec:
                raise FailedPrecondition(f"consumer {spec.durable} exists with subjects {consumer.spec.subjects}")
            if consumer.handler is not None:
                raise FailedPrecondition(f"consumer {spec.durable} already has a subscriber in this process")
            consumer.handler = handler
            self._work.notify_all()
        return _InProcessSubscription(self, spec.durable)

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver (or, with a worker thread, wait for) every pending message; False on timeout."""
        if getattr(self._delivering, "active", False):
            return True  # called from a handler: whoever is delivering delivers the rest
        if self._worker is None:
            deadline = time.monotonic() + timeout
            while self._deliver_one():
                if time.monotonic() > deadline:
                    return False
            return True
        deadline = time.monotonic() + timeout
        with self._work:
            while self._has_work() or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._work.wait(remaining)
        return True

    def dead_letters(self) -> list[DeadLetter]:
        with self._work:
            return list(self._dead_letters)

    def stats(self) -> BusStats:
        return self._counters.snapshot(pending_publish=0, connected=not self._closed)

    @property
    def conservative(self) -> bool:
        return self._counters.conservative

    def close(self) -> None:
        with self._work:
            self._closed = True
            self._work.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=self._config.request_timeout_seconds)
        metrics.OONA.unregister(self)

    def __enter__(self) -> InProcessBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stream_for(self, subject: str) -> _Stream:
        spec = stream_for_subject(self._config.streams, subject)
        return next(stream for stream in self._streams if stream.spec is spec)

    def _create_consumer(self, spec: ConsumerSpec) -> _Consumer:
        levels: list[deque[_Delivery]] = []
        for pattern in spec.subjects:
            matched: list[_Delivery] = []
            for stream in self._streams:
                kept: deque[_Delivery] = deque(maxlen=stream.log.maxlen)
                for entry in stream.log:
                    if subject_matches(pattern, entry.subject):
                        matched.append(_Delivery(entry.seq, entry.subject, entry.data, stored_ns=entry.stored_ns))
                        if stream.spec.work_queue:
                            continue
                    kept.append(entry)
                stream.log = kept
            levels.append(deque(sorted(matched, key=lambda delivery: delivery.seq)))
        consumer = _Consumer(spec, levels, seen_keys_for(self._config, spec.durable))
        self._consumers[spec.durable] = consumer
        self._counters.set_depth(spec.durable, consumer.pending())
        return consumer

    def _unsubscribe(self, durable: str) -> None:
        with self._work:
            consumer = self._consumers.get(durable)
            if consumer is not None:
                consumer.handler = None

    def _has_work(self) -> bool:
        return any(c.handler is not None and c.pending() for c in self._consumers.values())

    def _take(self) -> tuple[_Consumer, int, _Delivery] | None:
        with self._work:
            if self._closed:
                return None
            consumers = list(self._consumers.values())
            for offset in range(len(consumers)):
                consumer = consumers[(self._cursor + offset) % len(consumers)]
                if consumer.handler is None:
                    continue
                for index, level in enumerate(consumer.levels):
                    if level:
                        self._cursor = (self._cursor + offset + 1) % len(consumers)
                        delivery = level.popleft()
                        delivery.count += 1
                        self._busy += 1
                        return consumer, index, delivery
            return None

    def _deliver_one(self) -> bool:
        taken = self._take()
        if taken is None:
            return False
        consumer, index, delivery = taken
        self._delivering.active = True
        try:
            self._process(consumer, index, delivery)
        finally:
            self._delivering.active = False
            with self._work:
                self._busy -= 1
                self._counters.set_depth(consumer.spec.durable, consumer.pending())
                self._work.notify_all()
        return True

    def _process(self, consumer: _Consumer, index: int, delivery: _Delivery) -> None:
        config = self._config
        try:
            opened = open_envelope(
                delivery.data,
                secret=config.hmac_secret,
                accepted_schema_version=config.schema_version,
                key_id=config.hmac_key_id,
                subject=delivery.subject,
                stored_time_ns=delivery.stored_ns,
                max_age_seconds=config.max_age_seconds,
            )
        except RejectedEnvelope as rejected:
            self._dead_letter(delivery, rejected.reason, rejected.detail)
            return
        data_digest = digest(delivery.data)
        verdict = consumer.seen.verdict(opened.idempotency_key, delivery.seq, data_digest)
        if verdict == Verdict.REPLAY:
            detail = f"idempotency key {opened.idempotency_key[:200]!r} was handled before in another message"
            self._dead_letter(delivery, DeadLetterReason.REPLAYED, detail)
            return
        if verdict == Verdict.REPEAT:
            self._counters.add("duplicates_dropped")
            return
        if delivery.count > 1:
            self._counters.add("redelivered")
        handler = consumer.handler
        assert handler is not None
        try:
            handle_traced(handler, opened, delivery.subject, consumer.spec.durable)
        except Exception as error:
            self._counters.add("handler_failures")
            logger.warning(
                "handler of %s failed on %s (delivery %d): %r",
                consumer.spec.durable,
                delivery.subject,
                delivery.count,
                error,
            )
            if delivery.count >= config.max_deliver:
                self._dead_letter(delivery, DeadLetterReason.MAX_DELIVERIES, repr(error))
            else:
                with self._work:
                    consumer.levels[index].appendleft(delivery)
            return
        consumer.seen.add(opened.idempotency_key, delivery.seq, data_digest)
        self._counters.add("handled")

    def _dead_letter(self, delivery: _Delivery, reason: DeadLetterReason, detail: str) -> None:
        with self._work:
            self._dead_letters.append(DeadLetter(delivery.subject, delivery.data, reason.value, detail))
        self._counters.dead_lettered(reason.value)
        target = dead_letter_subject(self._config.dead_letter_prefix, delivery.subject)
        summary = f"{delivery.subject} -> {target}: {reason.value} ({detail})"
        self._alerts.raise_alert(AlertKind.DEAD_LETTER, summary, delivery.subject)

    def _run_worker(self) -> None:
        while True:
            with self._work:
                while not self._closed and not self._has_work():
                    self._work.wait()
                if self._closed:
                    return
            self._deliver_one()
