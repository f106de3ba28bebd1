"""The run folder: metrics.jsonl, events.jsonl, summary.json and config.json.

Everything a report needs is written here as it happens, one JSON line per epoch
and per event, so a run folder can be read (and its report re-rendered) even when
the run stopped half way.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from esper.fsutil import atomic_write
from esper.leyline.v1 import run_pb2

METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.png"


def message_to_json(message: Message) -> dict[str, Any]:
    """A proto as a JSON-ready dict: proto field names, every field, 64-bit ints as numbers.

    Non-finite doubles come out as "NaN" / "Infinity" strings, as in the proto JSON
    mapping, so every line stays strict JSON.
    """
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    return _in_field_order(message.DESCRIPTOR, data)


def _in_field_order(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Keys in .proto order (MessageToDict puts set fields first), nested messages too."""
    ordered: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        nested = field.message_type
        is_map = nested is not None and nested.GetOptions().map_entry
        if nested is not None and not is_map and isinstance(value, dict):
            value = _in_field_order(nested, value)
        ordered[field.name] = value
    ordered.update((key, value) for key, value in data.items() if key not in ordered)
    return ordered


def _strict(value: Any) -> Any:
    """Replace non-finite floats by their proto-JSON strings; json.dumps would write bare NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(key): _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(_strict(value), allow_nan=False, indent=indent, sort_keys=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a JSON-lines file; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class RunFolder:
    """Writes one run's folder; creates it (and its parents) if needed."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir).expanduser()
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def append_metrics(self, metrics: run_pb2.EpochMetrics, **extra: Any) -> dict[str, Any]:
        """Append one epoch's line: the EpochMetrics fields, then `extra` keys (e.g. elapsed_seconds)."""
        row = {**message_to_json(metrics), **extra}
        self._append(self.metrics_path, row)
        return row

    def append_event(self, event: run_pb2.RunEvent) -> None:
        """Append one RunEvent; `kind` names its payload (e.g. "seed_transition").

        Usable directly as a RunEventLog sink.
        """
        self._append(self.events_path, {"kind": event.WhichOneof("payload") or "", **message_to_json(event)})

    def write_summary(
        self,
        summary: run_pb2.RunSummary | Mapping[str, Any],
        *,
        run_id: str | None = None,
        dataset: str | None = None,
        static: bool | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write summary.json: run_id, dataset, static first, then the summary's fields, then `extra`.

        `summary` is a RunSummary proto or an already assembled mapping; keyword
        arguments given here win over the mapping's keys.
        """
        fields = message_to_json(summary) if isinstance(summary, Message) else dict(summary)
        named = {"run_id": run_id, "dataset": dataset, "static": static}
        head = {key: value if value is not None else fields.get(key) for key, value in named.items()}
        data = {key: value for key, value in head.items() if value is not None or key in fields}
        data.update((key, value) for key, value in fields.items() if key not in data)
        data.update(extra)
        self._replace(self.summary_path, data)
        return data

    def write_config(self, config: Any) -> dict[str, Any]:
        """Write config.json from an EsperConfig (or any dataclass) or a plain mapping."""
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            data = dataclasses.asdict(config)
        elif isinstance(config, Mapping):
            data = dict(config)
        else:
            raise TypeError(f"config must be a dataclass or a mapping, got {type(config).__name__}")
        self._replace(self.config_path, data)
        return data

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def read_events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.events_path)

    def read_summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        data: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return data

    def _append(self, path: Path, row: Mapping[str, Any]) -> None:
        # Opened per line: a reader (or a crash) always sees whole, flushed lines.
        with path.open("a", encoding="utf-8") as handle:
            handle.write(_dumps(row) + "\n")

    def _replace(self, path: Path, data: Mapping[str, Any]) -> None:
        atomic_write(path, (_dumps(data, indent=2) + "\n").encode("utf-8"), suffix=".partial")
