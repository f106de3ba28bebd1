"""Typed hyper-parameters of IR nodes: what each op accepts, and the resolved values."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from esper.leyline.v1 import blueprint_pb2

AttrValue = int | float | tuple[int, ...]


class AttrKind(enum.Enum):
    """Which member of the AttributeValue oneof an attribute must use."""

    INT = "int_value"
    FLOAT = "float_value"
    INTS = "ints_value"


class AttributeProblem(Exception):
    """An attribute is missing, unknown, ill-typed or out of range."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True)
class AttributeSpec:
    """One accepted attribute: its type, whether it is required, its default and bounds.

    Bounds are inclusive; for INTS they apply to every element. `positive` refuses 0
    for floats whose range starts at 0 (eps, init scale).
    """

    name: str
    kind: AttrKind
    required: bool = False
    default: AttrValue | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    max_length: int | None = None


class Attributes:
    """Resolved attribute values of one node, defaults applied."""

    def __init__(self, values: Mapping[str, AttrValue]) -> None:
        self._values = dict(values)

    def get_int(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int)
        return value

    def get_float(self, name: str) -> float:
        value = self._values[name]
        assert isinstance(value, float)
        return value

    def get_ints(self, name: str) -> tuple[int, ...]:
        value = self._values[name]
        assert isinstance(value, tuple)
        return value


def resolve_attributes(
    specs: tuple[AttributeSpec, ...], given: Mapping[str, blueprint_pb2.AttributeValue]
) -> Attributes:
    """Check `given` against `specs` and return every attribute with defaults filled in."""
    by_name = {spec.name: spec for spec in specs}
    for name in sorted(given):
        if name not in by_name:
            accepted = ", ".join(sorted(by_name)) or "none"
            raise AttributeProblem(name, f"unknown attribute {name!r} (accepted: {accepted})")
    values: dict[str, AttrValue] = {}
    for spec in specs:
        if spec.name in given:
            values[spec.name] = _read(spec, given[spec.name])
        elif spec.required:
            raise AttributeProblem(spec.name, f"missing required attribute {spec.name!r}")
        elif spec.default is not None:
            values[spec.name] = spec.default
    return Attributes(values)


def _read(spec: AttributeSpec, value: blueprint_pb2.AttributeValue) -> AttrValue:
    which = value.WhichOneof("value")
    if which != spec.kind.value:
        raise AttributeProblem(
            spec.name, f"attribute {spec.name!r} must be a {spec.kind.value}, got {which or 'nothing'}"
        )
    result: AttrValue
    if spec.kind is AttrKind.INT:
        result = int(value.int_value)
        _check_range(spec, result)
    elif spec.kind is AttrKind.FLOAT:
        result = float(value.float_value)
        if not math.isfinite(result):
            raise AttributeProblem(spec.name, f"attribute {spec.name!r} must be finite")
        _check_range(spec, result)
    else:
        result = tuple(int(v) for v in value.ints_value.values)
        if not result or (spec.max_length is not None and len(result) > spec.max_length):
            raise AttributeProblem(spec.name, f"attribute {spec.name!r} must hold 1 to {spec.max_length} integers")
        for element in result:
            _check_range(spec, element)
    return result


def _check_range(spec: AttributeSpec, value: float) -> None:
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high) or (spec.positive and value <= 0):
        bounds = f"[{low}, {high}]" if not spec.positive else f"({low}, {high}]"
        raise AttributeProblem(spec.name, f"attribute {spec.name!r} = {value} is outside {bounds}")
