"""The efficacy bench's own logic, free of torch: tasks, the static grid at a parameter count,
the results file (resumable), the never-worse column and the markdown table.

`bench/efficacy.py` runs the cells; this module decides what they are and renders them,
so it can be tested fast (tests/bench/test_efficacy_report.py).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_FORMAT = 1

STATIC = "static"
ESPER = "esper"
BEST_STATIC = "best-static"
GROWN = "grown-from-scratch"
GROMO = "gromo"
METHODS = (STATIC, ESPER, BEST_STATIC, GROWN, GROMO)

METHOD_TITLES = {
    STATIC: "static initial host",
    ESPER: "Esper",
    BEST_STATIC: "best static at Esper's size",
    GROWN: "grown architecture from scratch",
    GROMO: "gromo TINY (MLP)",
}


@dataclass(frozen=True)
class Task:
    """A bench task: a dataset `esper run --dataset` knows and the host width to start from (None: default)."""

    name: str
    dataset: str
    host_width: int | None
    about: str


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("digits", "digits", None, "8x8 digits, default CNN (3 channels)"),
        Task("mnist5k", "mnist5k", None, "5,000 MNIST digits, default CNN (3 channels)"),
        Task("spirals", "spirals", None, "three spirals, default MLP (2 x 16)"),
        Task("spirals-w3", "spirals", 3, "under capacity: three spirals from an MLP of 2 x 3"),
        Task("digits-w2", "digits", 2, "under capacity: digits from a CNN of 2 channels"),
        Task("products6-w4", "products6", 4, "under capacity: products6 features from an MLP of 2 x 4"),
    )
}
DEFAULT_TASKS = ("digits", "mnist5k", "spirals", "products6-w4", "spirals-w3", "digits-w2")


# --- parameter counts of Esper's default hosts (esper.hosts), without building them ----------


def mlp_parameters(features: int, classes: int, width: int, depth: int) -> int:
    """fc1..fc<depth> of `width` units and a classifier, with biases."""
    hidden = (features + 1) * width + (depth - 1) * (width + 1) * width
    return hidden + (width + 1) * classes


def cnn_parameters(input_shape: Sequence[int], classes: int, width: int, depth: int) -> int:
    """conv1..conv<depth> (3x3, `width` channels, each followed by 2x2 pooling) and a linear classifier."""
    channels, height, breadth = input_shape
    convs = (channels * 9 + 1) * width + (depth - 1) * (width * 9 + 1) * width
    pooled = (height // 2**depth) * (breadth // 2**depth)
    return convs + (width * pooled + 1) * classes


def host_parameters(kind: str, input_shape: Sequence[int], classes: int, width: int, depth: int) -> int:
    if kind == "mlp":
        return mlp_parameters(int(input_shape[0]), classes, width, depth)
    if kind == "cnn":
        return cnn_parameters(input_shape, classes, width, depth)
    raise ValueError(f"unknown host kind {kind!r}")


def max_depth(kind: str, input_shape: Sequence[int]) -> int:
    """The deepest default host the input allows (a CNN halves the image once per block)."""
    if kind == "cnn":
        return max(1, int(math.log2(min(input_shape[1:]))))
    return 8


def width_for(kind: str, input_shape: Sequence[int], classes: int, depth: int, target: int) -> int:
    """The width whose host has the parameter count closest to `target` (the narrower one on a tie)."""
    best_width, best_gap = 1, abs(host_parameters(kind, input_shape, classes, 1, depth) - target)
    width = 1
    while True:
        width += 1
        params = host_parameters(kind, input_shape, classes, width, depth)
        gap = abs(params - target)
        if gap < best_gap:
            best_width, best_gap = width, gap
        if params > target or width >= 4096:
            return best_width


@dataclass(frozen=True)
class GridMember:
    """One static host of the grid: its depth, width and parameter count."""

    depth: int
    width: int
    params: int

    def to_dict(self) -> dict[str, int]:
        return {"depth": self.depth, "width": self.width, "params": self.params}


def static_grid(
    kind: str, input_shape: Sequence[int], classes: int, target: int, depths: Iterable[int] = (1, 2, 3)
) -> list[GridMember]:
    """For each depth the input allows, the host whose parameter count is closest to `target`."""
    members = []
    for depth in depths:
        if depth > max_depth(kind, input_shape):
            continue
        width = width_for(kind, input_shape, classes, depth, target)
        members.append(GridMember(depth, width, host_parameters(kind, input_shape, classes, width, depth)))
    return members


def select_on_validation(results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The grid member with the best validation accuracy (fewer parameters, then shallower, on a tie)."""
    if not results:
        raise ValueError("no grid results to select from")
    return max(results, key=lambda r: (r["val_accuracy"], -r["params"], -r.get("depth", 0)))


def gromo_start_width(features: int, classes: int, target_params: int, depth: int = 2) -> int:
    """The MLP width whose parameter count is closest to the initial host's (at least 1)."""
    return width_for("mlp", (features,), classes, depth, target_params)


# --- the results file --------------------------------------------------------------------------


def cell_key(task: str, method: str, seed: int) -> str:
    return f"{task}/{method}/{seed}"


class ResultStore:
    """Per-seed results in a JSON file, written after every cell so a killed bench loses none.

    `settings` (epochs, optimizer, ...) must match the file's: cells of different
    settings never mix in one table.
    """

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        self.path = path
        self.settings = dict(settings)
        self.cells: dict[str, dict[str, Any]] = {}
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != RESULTS_FORMAT:
                raise ValueError(f"{path}: results format {data.get('format')!r}, expected {RESULTS_FORMAT}")
            if data.get("settings") != self.settings:
                raise ValueError(
                    f"{path} holds results for settings {data.get('settings')}, not {self.settings}; "
                    "use another --results file"
                )
            self.cells = dict(data.get("cells", {}))

    def get(self, task: str, method: str, seed: int) -> dict[str, Any] | None:
        return self.cells.get(cell_key(task, method, seed))

    def put(self, result: Mapping[str, Any]) -> None:
        self.cells[cell_key(result["task"], result["method"], int(result["seed"]))] = dict(result)
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": RESULTS_FORMAT, "settings": self.settings, "cells": dict(sorted(self.cells.items()))}
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True)
            file.write("\n")
        os.replace(name, self.path)


def load_cells(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings, cells) of a results file, for rendering without running."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("settings", {})), dict(data.get("cells", {}))


# --- the table ---------------------------------------------------------------------------------


def _by_seed(cells: Mapping[str, Mapping[str, Any]], task: str, method: str) -> dict[int, Mapping[str, Any]]:
    return {int(cell["seed"]): cell for cell in cells.values() if cell["task"] == task and cell["method"] == method}


def _std(values: list[float]) -> float:
    """Sample standard deviation (n - 1): the conservative figure over a handful of seeds."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def never_worse(cells: Mapping[str, Mapping[str, Any]], task: str) -> float | None:
    """The worst per-seed difference Esper minus its static twin (same host, seed, data), in accuracy."""
    esper, static = _by_seed(cells, task, ESPER), _by_seed(cells, task, STATIC)
    shared = sorted(esper.keys() & static.keys())
    if not shared:
        return None
    return min(float(esper[s]["test_accuracy"]) - float(static[s]["test_accuracy"]) for s in shared)


@dataclass(frozen=True)
class Row:
    task: str
    method: str
    seeds: int
    accuracy_mean: float
    accuracy_std: float
    params_mean: float
    wall_ratio: float | None
    never_worse: float | None


def summarize(cells: Mapping[str, Mapping[str, Any]], task: str, method: str) -> Row | None:
    """One row: test accuracy mean ± std over seeds, mean parameters, wall time / the static final network's."""
    runs = _by_seed(cells, task, method)
    if not runs:
        return None
    accuracy = [float(cell["test_accuracy"]) for cell in runs.values()]
    reference = _by_seed(cells, task, BEST_STATIC)
    ratios = [
        float(runs[s]["wall_seconds"]) / float(reference[s]["wall_seconds"])
        for s in sorted(runs.keys() & reference.keys())
        if float(reference[s]["wall_seconds"]) > 0
    ]
    return Row(
        task=task,
        method=method,
        seeds=len(runs),
        accuracy_mean=statistics.mean(accuracy),
        accuracy_std=_std(accuracy),
        params_mean=statistics.mean(float(cell["params"]) for cell in runs.values()),
        wall_ratio=statistics.mean(ratios) if ratios else None,
        never_worse=never_worse(cells, task) if method == ESPER else None,
    )


def render_table(cells: Mapping[str, Mapping[str, Any]], tasks: Sequence[str], methods: Sequence[str] = METHODS) -> str:
    """The markdown table: one row per task and method that has results."""
    lines = [
        "| task | method | seeds | test accuracy % (mean ± std) | parameters | wall time x static final "
        "| Esper - static twin, worst seed (points) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task in tasks:
        for method in methods:
            row = summarize(cells, task, method)
            if row is None:
                continue
            ratio = f"{row.wall_ratio:.2f}" if row.wall_ratio is not None else "-"
            worst = f"{100 * row.never_worse:+.2f}" if row.never_worse is not None else ""
            lines.append(
                f"| {task} | {METHOD_TITLES.get(method, method)} | {row.seeds} | "
                f"{100 * row.accuracy_mean:.2f} ± {100 * row.accuracy_std:.2f} | {row.params_mean:,.0f} | "
                f"{ratio} | {worst} |"
            )
    return "\n".join(lines)


def verdicts(cells: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]) -> list[str]:
    """The issue's done-when checks, one line each, on what has been measured."""
    lines = []
    for task in tasks:
        esper, best = summarize(cells, task, ESPER), summarize(cells, task, BEST_STATIC)
        worst = never_worse(cells, task)
        if esper is None:
            continue
        parts = []
        if best is not None:
            gap = 100 * (esper.accuracy_mean - best.accuracy_mean)
            parts.append(
                f"Esper - best static at its size {gap:+.2f} points ({'within' if gap >= -1 else 'NOT within'} 1)"
            )
        if worst is not None:
            parts.append(f"worst seed vs static twin {100 * worst:+.2f} points ({'ok' if worst >= -0.01 else 'WORSE'})")
        gromo = summarize(cells, task, GROMO)
        if gromo is not None:
            gap = 100 * (esper.accuracy_mean - gromo.accuracy_mean)
            parts.append(f"Esper - gromo {gap:+.2f} points")
        lines.append(f"- {task}: " + "; ".join(parts))
    return lines
