"""The dead-letter stream on JetStream: where rejected and undeliverable messages go, and why.

A dead letter is the original message bytes republished on
`<dead_letter_prefix>.<original subject>` with headers naming the reason, a
detail, and where it came from. Its `Nats-Msg-Id` is derived from the original
stream and sequence, so sending the same message twice (a retry, or two
processes reacting to the same advisory) stores it once.
"""

from __future__ import annotations

import json
import logging

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from esper.oona.api import AlertKind, DeadLetter
from esper.oona.config import OonaConfig
from esper.oona.counters import Alerts, BusCounters
from esper.oona.envelope import DeadLetterReason
from esper.oona.subjects import dead_letter_subject

logger = logging.getLogger(__name__)

REASON_HEADER = "Esper-Dead-Letter-Reason"
DETAIL_HEADER = "Esper-Dead-Letter-Detail"
SUBJECT_HEADER = "Esper-Original-Subject"
STREAM_HEADER = "Esper-Original-Stream"
SEQUENCE_HEADER = "Esper-Original-Sequence"
ORIGINAL_ID_HEADER = "Esper-Original-Msg-Id"
MSG_ID_HEADER = "Nats-Msg-Id"
_DETAIL_LIMIT = 400


def advisory_subject(stream: str, consumer: str) -> str:
    """Where JetStream announces that a consumer gave up on a message after max_deliver deliveries."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


def _header_value(text: str) -> str:
    # Header values are one line of printable ASCII.
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")[:_DETAIL_LIMIT]


class DeadLetterQueue:
    def __init__(self, js: JetStreamContext, config: OonaConfig, counters: BusCounters, alerts: Alerts) -> None:
        self._js = js
        self._config = config
        self._counters = counters
        self._alerts = alerts

    async def send(
        self,
        *,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None,
        stream: str,
        sequence: int,
        reason: DeadLetterReason,
        detail: str,
    ) -> bool:
        """Store the dead letter; False (and nothing counted) if JetStream could not take it now."""
        out = {k: v for k, v in (headers or {}).items() if not k.startswith("Nats-")}
        if headers and MSG_ID_HEADER in headers:
            out[ORIGINAL_ID_HEADER] = headers[MSG_ID_HEADER]
        out.update(
            {
                MSG_ID_HEADER: f"dlq-{stream}-{sequence}",
                REASON_HEADER: reason.value,
                DETAIL_HEADER: _header_value(detail),
                SUBJECT_HEADER: subject,
                STREAM_HEADER: stream,
                SEQUENCE_HEADER: str(sequence),
            }
        )
        target = dead_letter_subject(self._config.dead_letter_prefix, subject)
        timeout = self._config.publish_timeout_seconds
        try:
            ack = await self._js.publish(target, data, headers=out, timeout=timeout)
        except (NatsError, TimeoutError) as error:
            logger.warning("oona: could not dead-letter %s #%d (%s): %r", stream, sequence, reason, error)
            return False
        if not ack.duplicate:
            self._counters.dead_lettered(reason.value)
            summary = f"{subject} -> {target}: {reason.value} ({_header_value(detail)})"
            self._alerts.raise_alert(AlertKind.DEAD_LETTER, summary, subject)
        return True

    async def rescue(self, advisory: Msg) -> None:
        """Dead-letter the message a MAX_DELIVERIES advisory names (its last delivery was never acked)."""
        try:
            event = json.loads(advisory.data)
            stream, sequence = str(event["stream"]), int(event["stream_seq"])
            deliveries = int(event.get("deliveries", 0))
        except (ValueError, KeyError, TypeError):
            logger.warning("oona: unreadable max-deliveries advisory %r", advisory.data[:200])
            return
        try:
            raw = await self._js.get_msg(stream, sequence)
        except NotFoundError:
            return  # already gone (acked late, or aged out)
        except (NatsError, TimeoutError) as error:
            logger.warning("oona: could not read %s #%d to dead-letter it: %r", stream, sequence, error)
            return
        stored = await self.send(
            subject=raw.subject or "",
            data=raw.data or b"",
            headers=raw.headers,
            stream=stream,
            sequence=sequence,
            reason=DeadLetterReason.MAX_DELIVERIES,
            detail=f"not acknowledged after {deliveries} deliveries",
        )
        if stored and self._is_work_queue(stream):
            # A work queue would keep the unacked message forever; it now lives in the dead letters.
            try:
                await self._js.delete_msg(stream, sequence)
            except (NatsError, TimeoutError) as error:
                logger.warning("oona: could not remove %s #%d: %r", stream, sequence, error)

    async def read(self, limit: int) -> list[DeadLetter]:
        """The oldest `limit` dead letters still stored (for operators and tests)."""
        info = await self._js.stream_info(self._config.dead_letter_stream)
        state = info.state
        letters: list[DeadLetter] = []
        for sequence in range(state.first_seq, state.last_seq + 1):
            if len(letters) >= limit or state.messages == 0:
                break
            try:
                raw = await self._js.get_msg(self._config.dead_letter_stream, sequence)
            except NotFoundError:
                continue
            headers = raw.headers or {}
            letters.append(
                DeadLetter(
                    subject=headers.get(SUBJECT_HEADER, raw.subject or ""),
                    data=raw.data or b"",
                    reason=headers.get(REASON_HEADER, ""),
                    detail=headers.get(DETAIL_HEADER, ""),
                )
            )
        return letters

    def _is_work_queue(self, stream: str) -> bool:
        return any(spec.name == stream and spec.work_queue for spec in self._config.streams)
