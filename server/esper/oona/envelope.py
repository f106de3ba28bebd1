"""Leyline `BusEnvelope`: build, sign, open and verify. Transport-free (no nats here).

Every message on Oona is a `BusEnvelope` whose payload is the serialized Leyline
message named by `message_type`. The HMAC-SHA256 is computed over the envelope
serialized deterministically with `hmac_sha256` empty, keyed by a shared secret:
it covers the subject the bus published it on, the idempotency key, the publish
time and the payload. A consumer that has a secret rejects unsigned envelopes,
envelopes signed with another key id, envelopes whose HMAC does not verify, ones
delivered on another subject than they were signed for, and ones whose publish time
is further than `max_age_seconds` from when the stream stored them (a replay made
later); repeats within that window are the consumer's seen-key record's to catch.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from esper.errors import InvalidArgument
from esper.leyline.v1 import bus_pb2, control_pb2, kernel_pb2, lifecycle_pb2, policy_pb2, run_pb2, telemetry_pb2
from esper.observability.spans import current_trace_context
from esper.oona.config import OonaConfig
from esper.state.packet import SCHEMA_VERSION

PAYLOAD_TYPES: Mapping[bus_pb2.BusMessageType, type[Message]] = {
    bus_pb2.BUS_MESSAGE_TYPE_SEED_TELEMETRY: telemetry_pb2.SeedTelemetry,
    bus_pb2.BUS_MESSAGE_TYPE_ADAPTATION_COMMAND: control_pb2.AdaptationCommand,
    bus_pb2.BUS_MESSAGE_TYPE_FIELD_REPORT: control_pb2.FieldReport,
    bus_pb2.BUS_MESSAGE_TYPE_POLICY_UPDATE: control_pb2.PolicyUpdate,
    bus_pb2.BUS_MESSAGE_TYPE_COMPILE_JOB: kernel_pb2.CompileJob,
    bus_pb2.BUS_MESSAGE_TYPE_SYSTEM_STATE: telemetry_pb2.SystemStatePacket,
    bus_pb2.BUS_MESSAGE_TYPE_RUN_EVENT: run_pb2.RunEvent,
    bus_pb2.BUS_MESSAGE_TYPE_POLICY_TRANSITION: policy_pb2.PolicyTransition,
}
_TYPE_OF_PAYLOAD: Mapping[str, bus_pb2.BusMessageType] = {
    cls.DESCRIPTOR.full_name: kind for kind, cls in PAYLOAD_TYPES.items()
}


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter stream (sent in the `Esper-Dead-Letter-Reason` header)."""

    INVALID_ENVELOPE = "INVALID_ENVELOPE"  # not a BusEnvelope, or a required field is missing
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    SCHEMA_VERSION_UNSUPPORTED = "SCHEMA_VERSION_UNSUPPORTED"  # newer than this consumer
    BAD_SIGNATURE = "BAD_SIGNATURE"  # missing, other key id, does not verify, or signed for another subject
    STALE = "STALE"  # published further from when it was stored than the bus's time window allows
    REPLAYED = "REPLAYED"  # a new message with the idempotency key of one already handled
    UNDECODABLE_PAYLOAD = "UNDECODABLE_PAYLOAD"
    MAX_DELIVERIES = "MAX_DELIVERIES"  # the handler failed (or never acked) max_deliver times


class RejectedEnvelope(Exception):
    """A consumer refuses an envelope; it is dead-lettered, never retried."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class OpenedEnvelope:
    """A verified envelope and its decoded payload (the Leyline message `message_type` names)."""

    envelope: bus_pb2.BusEnvelope
    message: Message

    @property
    def idempotency_key(self) -> str:
        return self.envelope.idempotency_key


def message_type_of(message: Message) -> bus_pb2.BusMessageType:
    """The BusMessageType that carries this Leyline message; InvalidArgument for any other message."""
    kind = _TYPE_OF_PAYLOAD.get(message.DESCRIPTOR.full_name)
    if kind is None:
        raise InvalidArgument.for_field("payload", f"{message.DESCRIPTOR.full_name} is not carried on the bus")
    return kind


def signature(envelope: bus_pb2.BusEnvelope, secret: bytes) -> bytes:
    """HMAC-SHA256 of the envelope serialized deterministically with `hmac_sha256` empty."""
    unsigned = bus_pb2.BusEnvelope()
    unsigned.CopyFrom(envelope)
    unsigned.ClearField("hmac_sha256")
    return hmac.new(secret, unsigned.SerializeToString(deterministic=True), hashlib.sha256).digest()


def seal(
    message: Message,
    *,
    source: str,
    priority: lifecycle_pb2.MessagePriority = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL,
    message_type: bus_pb2.BusMessageType | None = None,
    idempotency_key: str | None = None,
    trace_context: bus_pb2.TraceContext | None = None,
    secret: bytes | None = None,
    key_id: str = "",
    schema_version: int = SCHEMA_VERSION,
    publish_time: Timestamp | None = None,
) -> bus_pb2.BusEnvelope:
    """Wrap a Leyline message in a BusEnvelope, signed when `secret` is given.

    `message_type` defaults to the type that carries `message`'s class and must
    agree with it. Without an idempotency key a random one is drawn: give one
    derived from the message's identity when a retry must be recognized as a repeat.
    Without a trace context the current span's is carried, so consumers continue its trace.
    """
    inferred = message_type_of(message)
    if message_type is not None and message_type != inferred:
        raise InvalidArgument.for_field(
            "message_type",
            f"{bus_pb2.BusMessageType.Name(message_type)} does not carry {message.DESCRIPTOR.full_name}",
        )
    if not source:
        raise InvalidArgument.for_field("source", "must name the publishing service")
    if idempotency_key is not None and not idempotency_key:
        raise InvalidArgument.for_field("idempotency_key", "must not be empty when given")
    if priority == lifecycle_pb2.MESSAGE_PRIORITY_UNSPECIFIED:
        priority = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL
    envelope = bus_pb2.BusEnvelope(
        message_type=inferred,
        schema_version=schema_version,
        idempotency_key=idempotency_key or uuid.uuid4().hex,
        source=source,
        priority=priority,
        payload=message.SerializeToString(),
    )
    if trace_context is None:
        trace_context = current_trace_context()
    if trace_context is not None:
        envelope.trace_context.CopyFrom(trace_context)
    if publish_time is not None:
        envelope.publish_time.CopyFrom(publish_time)
    else:
        envelope.publish_time.GetCurrentTime()
    if secret is not None:
        envelope.hmac_key_id = key_id
        envelope.hmac_sha256 = signature(envelope, secret)
    return envelope


def sign_for_subject(envelope: bus_pb2.BusEnvelope, subject: str, secret: bytes, key_id: str) -> None:
    """Bind an envelope this bus signed to the subject it is published on (in place).

    Only an envelope this bus sealed and that is bound to no subject yet is signed again:
    publishing never lends the bus's key to bytes it did not seal, nor moves an envelope
    to another subject (those reach consumers as they are, and are refused there).
    """
    if envelope.subject or envelope.hmac_key_id != key_id or not envelope.hmac_sha256:
        return
    if not hmac.compare_digest(envelope.hmac_sha256, signature(envelope, secret)):
        return
    envelope.subject = subject
    envelope.hmac_sha256 = signature(envelope, secret)


def restamped(data: bytes, secret: bytes, key_id: str, now: Timestamp | None = None) -> bytes:
    """A signed envelope's bytes with its publish time set to now and signed again.

    For a message that waited in the local buffer while NATS was away: its publish
    time is when it reaches the stream, so the stale check measures the network, not the outage.
    """
    envelope = bus_pb2.BusEnvelope.FromString(data)
    if now is not None:
        envelope.publish_time.CopyFrom(now)
    else:
        envelope.publish_time.GetCurrentTime()
    envelope.hmac_key_id = key_id
    envelope.hmac_sha256 = signature(envelope, secret)
    return envelope.SerializeToString()


def open_envelope(
    data: bytes,
    *,
    secret: bytes | None,
    accepted_schema_version: int,
    key_id: str = "",
    subject: str | None = None,
    stored_time_ns: int | None = None,
    max_age_seconds: float | None = None,
) -> OpenedEnvelope:
    """Decode and check an envelope from the wire; RejectedEnvelope says why it cannot be handled.

    Checks, in order: it decodes and has its required fields; its HMAC verifies
    (when `secret` is set: authenticity before anything else is trusted), and then
    it was signed for the `subject` it was delivered on and its publish time is
    within `max_age_seconds` of `stored_time_ns` (when the stream stored it); its
    schema version is not newer than `accepted_schema_version`; its type is one
    this version knows; its payload decodes.
    """
    envelope = bus_pb2.BusEnvelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as error:
        raise RejectedEnvelope(DeadLetterReason.INVALID_ENVELOPE, f"not a BusEnvelope: {error}") from None
    if not envelope.idempotency_key or envelope.schema_version == 0:
        raise RejectedEnvelope(DeadLetterReason.INVALID_ENVELOPE, "idempotency_key and schema_version are required")
    if secret is not None:
        _verify(envelope, secret, key_id)
        if subject is not None and envelope.subject != subject:
            raise RejectedEnvelope(
                DeadLetterReason.BAD_SIGNATURE,
                f"signed for subject {envelope.subject[:200]!r}, delivered on {subject[:200]!r}",
            )
        if stored_time_ns is not None and max_age_seconds is not None:
            _check_age(envelope, stored_time_ns, max_age_seconds)
    if envelope.schema_version > accepted_schema_version:
        raise RejectedEnvelope(
            DeadLetterReason.SCHEMA_VERSION_UNSUPPORTED,
            f"schema version {envelope.schema_version} is newer than {accepted_schema_version}",
        )
    payload_class = PAYLOAD_TYPES.get(envelope.message_type)
    if payload_class is None:
        raise RejectedEnvelope(
            DeadLetterReason.UNKNOWN_MESSAGE_TYPE, f"message type {envelope.message_type} is not known"
        )
    message = payload_class()
    try:
        message.ParseFromString(envelope.payload)
    except DecodeError as error:
        raise RejectedEnvelope(
            DeadLetterReason.UNDECODABLE_PAYLOAD, f"payload is not a {payload_class.DESCRIPTOR.name}: {error}"
        ) from None
    return OpenedEnvelope(envelope, message)


def _check_age(envelope: bus_pb2.BusEnvelope, stored_time_ns: int, max_age_seconds: float) -> None:
    if not envelope.HasField("publish_time"):
        raise RejectedEnvelope(DeadLetterReason.STALE, "a signed envelope without a publish time")
    published_ns = envelope.publish_time.ToNanoseconds()
    skew = abs(stored_time_ns - published_ns) / 1e9
    if skew > max_age_seconds:
        raise RejectedEnvelope(
            DeadLetterReason.STALE,
            f"published {skew:.0f} s from when it was stored; at most {max_age_seconds:g} s are accepted",
        )


def _verify(envelope: bus_pb2.BusEnvelope, secret: bytes, key_id: str) -> None:
    if not envelope.hmac_sha256:
        raise RejectedEnvelope(DeadLetterReason.BAD_SIGNATURE, "envelope is not signed")
    if envelope.hmac_key_id != key_id:
        raise RejectedEnvelope(
            DeadLetterReason.BAD_SIGNATURE, f"signed with key {envelope.hmac_key_id!r}, expected {key_id!r}"
        )
    if not hmac.compare_digest(envelope.hmac_sha256, signature(envelope, secret)):
        raise RejectedEnvelope(DeadLetterReason.BAD_SIGNATURE, "HMAC does not verify")


class ConfigSealing:
    """`Bus.seal` for a bus holding an OonaConfig as `_config`: its secret, key id and schema version."""

    _config: OonaConfig

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
        return seal(
            message,
            source=source,
            priority=priority,
            idempotency_key=idempotency_key,
            trace_context=trace_context,
            secret=self._config.hmac_secret,
            key_id=self._config.hmac_key_id,
            schema_version=self._config.schema_version,
        )
