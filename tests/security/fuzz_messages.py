"""Random protobuf messages of any type, drawn by hypothesis from the message's descriptor.

Every field may be set or left alone; scalars range over their whole type (and
beyond what a server expects: negative and huge numbers, NaN and infinities, long
and non-ASCII strings, enum numbers no enum names), repeated fields get a few
items and nested messages go a few levels deep.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 3
MAX_ITEMS = 3

_INT32 = st.integers(-(2**31), 2**31 - 1)
_INT64 = st.integers(-(2**63), 2**63 - 1)
_UINT32 = st.integers(0, 2**32 - 1)
_UINT64 = st.integers(0, 2**64 - 1)
_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0.0, -1.0, 1e30]))
_DOUBLE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, -math.inf]))
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "run-1", "../../etc/passwd", "digits", "npz:/etc/passwd", "x" * 300, "é\u0000\U0001f600"]),
)
_BYTES = st.binary(max_size=64)

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_FLOAT: _FLOAT,
    FieldDescriptor.TYPE_DOUBLE: _DOUBLE,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: _TEXT,
    FieldDescriptor.TYPE_BYTES: _BYTES,
}


def draw_message(draw: st.DrawFn, message_class: type[Message], depth: int = 0) -> Message:
    """A random instance of `message_class`."""
    message = message_class()
    fill(draw, message, depth)
    return message


def fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        if field.message_type is not None and depth >= MAX_DEPTH:
            continue
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _fill_map(draw, message, field, depth)
        elif field.is_repeated:
            for _ in range(draw(st.integers(0, MAX_ITEMS))):
                if field.message_type is not None:
                    fill(draw, getattr(message, field.name).add(), depth + 1)
                else:
                    getattr(message, field.name).append(_scalar(draw, field))
        elif field.message_type is not None:
            child = getattr(message, field.name)
            child.SetInParent()
            fill(draw, child, depth + 1)
        else:
            setattr(message, field.name, _scalar(draw, field))


def _fill_map(draw: st.DrawFn, message: Message, field: FieldDescriptor, depth: int) -> None:
    key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
    target = getattr(message, field.name)
    for _ in range(draw(st.integers(0, MAX_ITEMS))):
        key = _scalar(draw, key_field)
        if value_field.message_type is not None:
            fill(draw, target[key], depth + 1)
        else:
            target[key] = _scalar(draw, value_field)


def _scalar(draw: st.DrawFn, field: FieldDescriptor) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values]
        return draw(st.one_of(st.sampled_from(numbers), st.integers(-3, 1000)))
    return draw(_SCALARS[field.type])
