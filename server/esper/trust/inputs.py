"""Bounded reading of what callers send: YAML, quoted values, paths.

- `load_yaml` is the one YAML reader of every server and command. It refuses
  anchors and aliases (an 800-byte document of nested aliases expands to gigabytes),
  documents over a size limit and nesting deeper than a limit, before any node is
  built, so a hostile document costs the time it takes to read its first alias.
- `quote` is how an error message shows a value the caller sent: repr, cut to a
  couple of hundred characters, so an error never echoes megabytes back.
- `confine` resolves a path and refuses it unless it lies inside a root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from esper.errors import InvalidArgument

QUOTE_LIMIT = 200
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 32


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` cut to about `limit` characters, saying how long the value was, for error messages."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} {'characters' if isinstance(value, str) else 'bytes'})"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` itself when short, else its first `limit` characters and how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class RefusedYaml(yaml.YAMLError):
    """The document uses a YAML feature this loader refuses, or is too deep."""


class SafeYamlLoader(yaml.SafeLoader):
    """SafeLoader without anchors or aliases, with bounded nesting, reading `3e-3` as a float.

    PyYAML's SafeLoader follows YAML 1.1, which needs `3.0e-3` for a float; the
    resolver added below takes YAML 1.2's forms too.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise RefusedYaml(f"aliases are not accepted (*{_short(event.anchor)} {event.start_mark})")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise RefusedYaml(f"anchors are not accepted (&{_short(anchor)} {event.start_mark})")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise RefusedYaml(f"nested deeper than {MAX_YAML_DEPTH} levels {event.start_mark}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


SafeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str | bytes, *, field: str = "config", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The plain data of one YAML document; InvalidArgument naming `field` if it is refused."""
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if size > max_bytes:
        raise InvalidArgument.for_field(field, f"YAML of {size} bytes; at most {max_bytes} are accepted")
    if not text.strip():
        return None
    try:
        return yaml.load(text, Loader=SafeYamlLoader)
    except RecursionError:
        raise InvalidArgument.for_field(field, "not accepted YAML: nested too deeply") from None
    except RefusedYaml as exc:
        raise InvalidArgument.for_field(field, f"not accepted YAML: {_short(str(exc), 400)}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument.for_field(field, f"not valid YAML: {_short(str(exc), 400)}") from None


def read_yaml_file(path: str | Path, *, field: str = "config", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """`load_yaml` of a file, refusing one over `max_bytes` before reading it."""
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise InvalidArgument.for_field(field, f"{quote(str(file))} holds {size} bytes; at most {max_bytes}")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument.for_field(field, f"cannot read {quote(str(file))}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument.for_field(field, f"{quote(str(file))} is not UTF-8 text: {exc.reason}") from exc
    return load_yaml(text, field=field, max_bytes=max_bytes)


def confine(path: str | Path, root: Path, *, field: str) -> Path:
    """`path` resolved (symbolic links followed; relative to `root`), refused unless strictly inside `root`.

    The message names the root, never what exists outside it. A caller's "~" is a name
    like any other (whose home would it be?), and a NUL or an unresolvable path is refused.
    """
    base = root.expanduser().resolve()
    if "\x00" in str(path):
        raise InvalidArgument.for_field(field, "must not contain a NUL character")
    candidate = Path(path)
    try:
        resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidArgument.for_field(field, f"{quote(str(path))} is not a usable path: {exc}") from None
    if base not in resolved.parents:
        raise InvalidArgument.for_field(field, f"{quote(str(path))} is outside {base}; paths must stay inside it")
    return resolved


def _short(text: object, limit: int = 60) -> str:
    shown = str(text)
    return shown if len(shown) <= limit else shown[:limit] + "..."
