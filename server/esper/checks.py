"""Value checks shared by every config and request check.

Each check raises InvalidArgument naming the dotted field it was given
(`tolaria.checkpoint_every`, `packet.validation_accuracy`), so a bad value is
reported the same way whether it came from a YAML file, a flag or an rpc.
InvalidArgument is also a ValueError, which is what a config constructor raises.
Numbers that must be positive or non-negative must also be finite: NaN and
infinity are never a useful setting or field value.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from esper.errors import InvalidArgument

Number = int | float


def finite(field: str, value: Number) -> None:
    if not math.isfinite(value):
        raise InvalidArgument.for_field(field, f"must be a finite number, got {value}")


def positive(field: str, value: Number) -> None:
    """`value` > 0 (for an int: >= 1)."""
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument.for_field(field, f"must be > 0, got {value}")


def non_negative(field: str, value: Number) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise InvalidArgument.for_field(field, f"must be >= 0, got {value}")


def above(field: str, value: Number, bound: Number) -> None:
    if not (math.isfinite(value) and value > bound):
        raise InvalidArgument.for_field(field, f"must be > {bound}, got {value}")


def at_least(field: str, value: Number, minimum: Number) -> None:
    if not (math.isfinite(value) and value >= minimum):
        raise InvalidArgument.for_field(field, f"must be >= {minimum}, got {value}")


def at_most(field: str, value: Number, maximum: Number) -> None:
    if not (math.isfinite(value) and value <= maximum):
        raise InvalidArgument.for_field(field, f"must be <= {maximum}, got {value}")


def in_range(
    field: str,
    value: Number,
    low: Number,
    high: Number,
    *,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> None:
    """`value` in [low, high], with `low_open`/`high_open` excluding an end ("(0, 1]").

    `note` is appended to the message, e.g. "(0 means the default)".
    """
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        suffix = f" {note}" if note else ""
        raise InvalidArgument.for_field(field, f"must be in {interval}{suffix}, got {value}")


def one_of(field: str, value: object, choices: Collection[object]) -> None:
    if value not in choices:
        raise InvalidArgument.for_field(field, f"must be one of {', '.join(map(str, choices))}, got {value!r}")


def required(field: str, value: str) -> None:
    """A string field that must be set."""
    if not value:
        raise InvalidArgument.for_field(field, "is required")
