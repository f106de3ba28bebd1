"""BusEnvelope sealing and opening: signatures, schema versions, types, payloads."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from esper.errors import InvalidArgument
from esper.leyline.v1 import bus_pb2, control_pb2, lifecycle_pb2
from esper.oona.envelope import (
    PAYLOAD_TYPES,
    DeadLetterReason,
    RejectedEnvelope,
    open_envelope,
    seal,
    signature,
)
from esper.state.samples import sample_adaptation_command, sample_field_report, sample_state_packet

SECRET = b"0123456789abcdef-shared"
OTHER_SECRET = b"fedcba9876543210-other!"


COMMAND = sample_adaptation_command()


def sealed(**overrides: object) -> bus_pb2.BusEnvelope:
    arguments: dict[str, object] = {"source": "tamiyo", "secret": SECRET, "key_id": "k1"}
    arguments.update(overrides)
    return seal(COMMAND, **arguments)  # type: ignore[arg-type]


def open_bytes(data: bytes, secret: bytes | None = SECRET, key_id: str = "k1", accepted: int = 1) -> object:
    return open_envelope(data, secret=secret, accepted_schema_version=accepted, key_id=key_id)


def reason_of(data: bytes, **kwargs: object) -> DeadLetterReason:
    with pytest.raises(RejectedEnvelope) as caught:
        open_bytes(data, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_seal_then_open_round_trips_the_message_and_metadata() -> None:
    command = COMMAND
    trace = bus_pb2.TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    envelope = seal(
        command,
        source="tamiyo",
        priority=lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY,
        idempotency_key="cmd-1",
        trace_context=trace,
        secret=SECRET,
        key_id="k1",
    )
    data = envelope.SerializeToString()
    opened = open_envelope(data, secret=SECRET, accepted_schema_version=1, key_id="k1")
    assert opened.message == command
    assert isinstance(opened.message, control_pb2.AdaptationCommand)
    assert opened.envelope.message_type == bus_pb2.BUS_MESSAGE_TYPE_ADAPTATION_COMMAND
    assert opened.idempotency_key == "cmd-1"
    assert opened.envelope.priority == lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY
    assert opened.envelope.trace_context == trace
    assert opened.envelope.schema_version == 1
    assert len(opened.envelope.hmac_sha256) == 32
    assert opened.envelope.publish_time.seconds > 0


def test_every_payload_type_is_inferred_from_the_message_class() -> None:
    for message_type, payload_class in PAYLOAD_TYPES.items():
        envelope = seal(payload_class(), source="test")
        assert envelope.message_type == message_type
        opened = open_envelope(envelope.SerializeToString(), secret=None, accepted_schema_version=1)
        assert type(opened.message) is payload_class


def test_seal_refuses_a_mismatched_type_a_foreign_message_and_an_empty_source() -> None:
    with pytest.raises(InvalidArgument) as mismatched:
        seal(sample_field_report(), source="t", message_type=bus_pb2.BUS_MESSAGE_TYPE_COMPILE_JOB)
    assert mismatched.value.violations[0].field == "message_type"
    with pytest.raises(InvalidArgument) as foreign:
        seal(Timestamp(), source="t")
    assert foreign.value.violations[0].field == "payload"
    with pytest.raises(InvalidArgument) as anonymous:
        seal(sample_field_report(), source="")
    assert anonymous.value.violations[0].field == "source"


def test_unspecified_priority_is_sealed_as_normal_and_keys_are_unique_by_default() -> None:
    first = seal(sample_state_packet(), source="tolaria", priority=lifecycle_pb2.MESSAGE_PRIORITY_UNSPECIFIED)
    second = seal(sample_state_packet(), source="tolaria")
    assert first.priority == lifecycle_pb2.MESSAGE_PRIORITY_NORMAL
    assert first.idempotency_key and first.idempotency_key != second.idempotency_key


def test_signature_covers_every_field_but_itself() -> None:
    envelope = sealed()
    assert signature(envelope, SECRET) == envelope.hmac_sha256
    for mutate in (
        lambda e: setattr(e, "source", "mallory"),
        lambda e: setattr(e, "payload", e.payload + b"\x00"),
        lambda e: setattr(e, "priority", lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY),
        lambda e: setattr(e, "idempotency_key", "other"),
        lambda e: e.trace_context.__setattr__("tracestate", "x=1"),
    ):
        tampered = bus_pb2.BusEnvelope()
        tampered.CopyFrom(envelope)
        mutate(tampered)
        assert reason_of(tampered.SerializeToString()) == DeadLetterReason.BAD_SIGNATURE


def test_bad_missing_and_foreign_key_signatures_are_rejected() -> None:
    assert reason_of(sealed(secret=OTHER_SECRET).SerializeToString()) == DeadLetterReason.BAD_SIGNATURE
    unsigned = sealed(secret=None).SerializeToString()
    assert reason_of(unsigned) == DeadLetterReason.BAD_SIGNATURE
    assert reason_of(sealed(key_id="k2").SerializeToString()) == DeadLetterReason.BAD_SIGNATURE


def test_a_consumer_without_a_secret_accepts_signed_and_unsigned_envelopes() -> None:
    for envelope in (sealed(), sealed(secret=None)):
        opened = open_envelope(envelope.SerializeToString(), secret=None, accepted_schema_version=1)
        assert opened.message == COMMAND


def test_newer_schema_version_is_rejected_older_is_accepted() -> None:
    newer = sealed(schema_version=2).SerializeToString()
    assert reason_of(newer) == DeadLetterReason.SCHEMA_VERSION_UNSUPPORTED
    assert open_bytes(newer, accepted=2) is not None
    older = sealed(schema_version=1).SerializeToString()
    assert open_bytes(older, accepted=3) is not None


def test_unknown_message_type_is_rejected_even_when_signed() -> None:
    for unknown in (bus_pb2.BUS_MESSAGE_TYPE_UNSPECIFIED, 99):
        envelope = sealed(secret=None)
        envelope.message_type = unknown  # type: ignore[assignment]
        envelope.hmac_key_id = "k1"
        envelope.hmac_sha256 = signature(envelope, SECRET)
        assert reason_of(envelope.SerializeToString()) == DeadLetterReason.UNKNOWN_MESSAGE_TYPE


def test_garbage_missing_fields_and_undecodable_payloads_are_rejected() -> None:
    assert reason_of(b"\xff\xff\xff\xff", secret=None) == DeadLetterReason.INVALID_ENVELOPE
    keyless = sealed(secret=None)
    keyless.idempotency_key = ""
    assert reason_of(keyless.SerializeToString(), secret=None) == DeadLetterReason.INVALID_ENVELOPE
    broken = sealed(secret=None)
    broken.payload = b"\x0a\xff\xff\xff"  # field 1, length-delimited, truncated length
    assert reason_of(broken.SerializeToString(), secret=None) == DeadLetterReason.UNDECODABLE_PAYLOAD


def test_signature_is_checked_before_the_schema_version() -> None:
    forged = sealed(secret=OTHER_SECRET, schema_version=7).SerializeToString()
    assert reason_of(forged) == DeadLetterReason.BAD_SIGNATURE
