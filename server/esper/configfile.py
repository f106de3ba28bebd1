"""YAML config files into frozen dataclasses, checking every key.

`load(cls, path, overrides)` starts from the defaults of `cls()`, applies the YAML
file, then the overrides (command-line flags), and refuses an unknown key or a
value of the wrong type with an error naming the dotted key (`run.epochs`).
Sections are nested dataclasses; a section's own checks name their keys too.
Esper's own config is `esper.tolaria.config.EsperConfig`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from esper.errors import InvalidArgument
from esper.trust.inputs import clip, load_yaml, quote, read_yaml_file

C = TypeVar("C")


def load(
    cls: type[C],
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """Read the YAML config at `path` (None: defaults only), then apply `overrides`.

    `overrides` maps dotted keys (`{"run.epochs": 5}`) or nested sections
    (`{"run": {"epochs": 5}}`) to values; None values are skipped, so unset
    command-line flags can be passed through as they are. `defaults` (the same shape)
    replace `cls()`'s own defaults beneath the file and the overrides.
    """
    data = read_yaml_file(path) if path is not None else None
    return _from_document(cls, data, overrides, defaults)


def parse(
    cls: type[C], text: str, overrides: Mapping[str, Any] | None = None, *, defaults: Mapping[str, Any] | None = None
) -> C:
    """Like `load`, from YAML text (e.g. RunConfig.config_yaml)."""
    return _from_document(cls, load_yaml(text), overrides, defaults)


def _from_document(
    cls: type[C], data: Any, overrides: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None
) -> C:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidArgument.for_field("config", f"expected a mapping of sections, got {_type_name(data)}")
    return from_dict(cls, data, overrides, defaults=defaults)


def from_dict(
    cls: type[C],
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """Build a `cls` from nested plain data over its defaults (and `defaults`), checking every key."""
    merged = to_dict(cls())
    for key, value in _nested(defaults or {}).items():
        _merge(merged, {key: value}, "")
    _merge(merged, data, "")
    for key, value in _nested(overrides or {}).items():
        _merge(merged, {key: value}, "")
    return typing.cast(C, _build(cls, merged, ""))


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested data (lists for tuples) for YAML or JSON; `load` reads it back."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(config)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _nested(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`{"run.epochs": 5}` → `{"run": {"epochs": 5}}`, dropping None values."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = str(key).split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        if isinstance(value, Mapping) and isinstance(target.get(leaf), dict):
            target[leaf].update(value)
        else:
            target[leaf] = value
    return nested


def _merge(base: dict[str, Any], update: Mapping[str, Any], prefix: str) -> None:
    """Overlay `update` on `base`; unknown keys are refused here, with the keys known at that level."""
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str) or key not in base:
            known = ", ".join(sorted(base))
            raise InvalidArgument.for_field(clip(dotted), f"unknown key; known keys here: {known}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise InvalidArgument.for_field(dotted, f"expected a mapping, got {_type_name(value)}")
            _merge(base[key], value, f"{dotted}.")
        else:
            base[key] = value


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {
        f.name: _coerce(hints[f.name], data[f.name], f"{prefix}{f.name}")
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    try:
        return cls(**values)
    except InvalidArgument:
        raise
    except (ValueError, TypeError) as exc:
        message = str(exc)
        # Component configs start their ValueError messages with the field's name.
        leading = re.match(r"\w+", message)
        names = {f.name for f in dataclasses.fields(cls)}
        named = leading is not None and leading.group(0) in names
        field_path = f"{prefix}{leading.group(0)}" if named and leading else prefix.rstrip(".")
        raise InvalidArgument.for_field(field_path, message) from exc


def _coerce(hint: Any, value: Any, dotted: str) -> Any:
    """Check `value` against the type hint `hint` and convert it (lists to tuples, ints to floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise InvalidArgument.for_field(dotted, f"expected a mapping, got {_type_name(value)}")
        return _build(hint, value, f"{dotted}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            try:
                return _coerce(options[0], value, dotted)
            except InvalidArgument as exc:
                if exc.violations and exc.violations[0].field == dotted and type(None) in args:
                    raise _wrong_type(dotted, f"{_hint_name(options[0])} or null", value) from None
                raise
        raise _wrong_type(dotted, " or ".join(_hint_name(a) for a in args), value)
    if origin is tuple or origin is list:
        if not isinstance(value, list | tuple):
            raise _wrong_type(dotted, _hint_name(hint), value)
        item_hint = args[0] if args else Any
        items = [_coerce(item_hint, item, f"{dotted}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value not in args:
            raise InvalidArgument.for_field(dotted, f"must be one of {list(args)}, got {quote(value)}")
        return value
    return _coerce_scalar(hint, value, dotted)


def _coerce_scalar(hint: Any, value: Any, dotted: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if type(value) is not bool:
            raise _wrong_type(dotted, "bool", value)
        return value
    if hint is int:
        if type(value) is not int:
            raise _wrong_type(dotted, "int", value)
        return value
    if hint is float:
        if type(value) not in (int, float):
            raise _wrong_type(dotted, "float", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _wrong_type(dotted, "str", value)
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise _wrong_type(dotted, "path string", value)
        return Path(value)
    raise InvalidArgument.for_field(dotted, f"has a type the config loader cannot read: {hint!r}")


def _wrong_type(dotted: str, expected: str, value: Any) -> InvalidArgument:
    return InvalidArgument.for_field(dotted, f"expected {expected}, got {_type_name(value)} ({quote(value)})")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _hint_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (tuple, list):
        return f"list of {_hint_name(args[0]) if args else 'values'}"
    return getattr(hint, "__name__", str(hint))
