"""Every Leyline message survives bytes and JSON and comes back equal."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

import esper.leyline.v1 as leyline

_WELL_KNOWN = {"google.protobuf.Timestamp", "google.protobuf.Duration"}


def _leyline_messages() -> Iterator[type[Message]]:
    for info in pkgutil.iter_modules(leyline.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"esper.leyline.v1.{info.name}")
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            yield getattr(module, descriptor.name)


MESSAGES = sorted(_leyline_messages(), key=lambda cls: cls.DESCRIPTOR.full_name)


def _scalar(field: FieldDescriptor, salt: int) -> object:
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values if v.number != 0]
        return values[salt % len(values)]
    if kind == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{salt}-é"
    if kind == FieldDescriptor.TYPE_BYTES:
        return bytes([salt % 256, 0, 255])
    if kind == FieldDescriptor.TYPE_BOOL:
        return True
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 0.5 + salt  # exactly representable in float32
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return -(salt + 7)
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return -(2**40) - salt
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return 2**40 + salt
    return salt + 3  # uint32, fixed32


def fill(message: Message, depth: int = 0) -> Message:
    """Set every field (one member per oneof) to a non-default value."""
    descriptor: Descriptor = message.DESCRIPTOR
    seen_oneofs: set[str] = set()
    for salt, field in enumerate(descriptor.fields):
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
        _fill_field(message, field, salt, depth)
    return message


def _fill_field(message: Message, field: FieldDescriptor, salt: int, depth: int) -> None:
    target = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = field.message_type.fields
        key = _scalar(key_field, salt)
        if value_field.message_type is not None:
            fill(target[key], depth + 1)
        else:
            target[key] = _scalar(value_field, salt)
        return
    if field.message_type is not None:
        if field.message_type.full_name in _WELL_KNOWN:
            sub = target.add() if field.is_repeated else target
            sub.seconds, sub.nanos = 1_700_000_000 + salt, 5000
            return
        if depth > 4:
            return
        sub = target.add() if field.is_repeated else target
        fill(sub, depth + 1)
        sub.SetInParent()  # present even when the sub-message has no fields
        return
    if field.is_repeated:
        target.extend([_scalar(field, salt), _scalar(field, salt + 1)])
    else:
        setattr(message, field.name, _scalar(field, salt))


def test_every_contract_file_with_messages_is_covered() -> None:
    proto_dir = Path(__file__).resolve().parents[3] / "proto" / "esper" / "leyline" / "v1"
    with_messages = {p.name for p in proto_dir.glob("*.proto") if "\nmessage " in p.read_text()}
    covered = {cls.DESCRIPTOR.file.name.rsplit("/", 1)[-1] for cls in MESSAGES}
    assert with_messages and with_messages <= covered


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda cls: cls.DESCRIPTOR.name)
def test_bytes_round_trip(cls: type[Message]) -> None:
    original = fill(cls())
    data = original.SerializeToString(deterministic=True)
    decoded = cls.FromString(data)
    assert decoded == original
    assert decoded.SerializeToString(deterministic=True) == data


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda cls: cls.DESCRIPTOR.name)
def test_json_round_trip(cls: type[Message]) -> None:
    original = fill(cls())
    text = json_format.MessageToJson(original)
    decoded = json_format.Parse(text, cls())
    assert decoded == original


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda cls: cls.DESCRIPTOR.name)
def test_filled_message_is_not_empty(cls: type[Message]) -> None:
    # Guards the round-trip tests against comparing two empty messages.
    if cls.DESCRIPTOR.fields:
        assert fill(cls()).ByteSize() > 0


def test_json_refuses_unknown_field() -> None:
    from esper.leyline.v1 import control_pb2

    with pytest.raises(json_format.ParseError, match="no_such_field"):
        json_format.Parse('{"no_such_field": 1}', control_pb2.AdaptationCommand())


def test_every_domain_error_default_reason_is_an_error_reason_value() -> None:
    from esper import errors
    from esper.leyline.v1 import errors_pb2

    reasons = {name.removeprefix("ERROR_REASON_") for name in errors_pb2.ErrorReason.keys()}
    classes = [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.EsperError)]
    assert len(classes) > 5
    for cls in classes:
        assert cls.reason in reasons, f"{cls.__name__}.reason {cls.reason!r} is not an ErrorReason"
