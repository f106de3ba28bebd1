"""A run's report: report.png with three panels, and a one-screen text summary.

Both read only what the run folder holds (metrics.jsonl, events.jsonl,
summary.json), so any run folder can be re-rendered after the fact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from esper.tolaria.runfolder import REPORT_FILE, RunFolder, read_jsonl

Rows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class _Mark:
    """How one kind of seed transition is drawn on the curves."""

    label: str
    color: str
    marker: str
    linestyle: str


# Seed stages the plots mark, by the stage a transition moves into.
MARKS = {
    "SEED_STAGE_GERMINATED": _Mark("germinated", "#2ca02c", "^", "--"),
    "SEED_STAGE_FOSSILIZED": _Mark("fossilized", "#1f77b4", "s", "-"),
    "SEED_STAGE_CULLED": _Mark("culled", "#d62728", "x", ":"),
    "SEED_STAGE_ROLLED_BACK": _Mark("rolled back", "#9467bd", "v", "-."),
}


def _number(value: Any, default: float = math.nan) -> float:
    """A metrics value as a float; proto JSON writes non-finite doubles and big ints as strings."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _series(rows: Rows, key: str) -> tuple[list[float], list[float]]:
    xs = [_number(row.get("epoch"), float(i)) for i, row in enumerate(rows)]
    return xs, [_number(row.get(key)) for row in rows]


def _transitions(events: Rows) -> list[tuple[float, str]]:
    """(epoch, to_stage) of every marked seed transition, in event order."""
    found = []
    for event in events:
        transition = event.get("seed_transition")
        if isinstance(transition, Mapping) and transition.get("to_stage") in MARKS:
            found.append((_number(transition.get("epoch"), 0.0), str(transition["to_stage"])))
    return found


def _mark_transitions(ax: Axes, transitions: list[tuple[float, str]], *, with_labels: bool) -> None:
    labelled: set[str] = set()
    for epoch, stage in transitions:
        mark = MARKS[stage]
        label = mark.label if with_labels and stage not in labelled else None
        labelled.add(stage)
        ax.axvline(epoch, color=mark.color, linestyle=mark.linestyle, linewidth=1.1, alpha=0.75)
        # Marker on the top edge: x in data units, y in axes units.
        ax.plot(
            [epoch],
            [1.0],
            marker=mark.marker,
            color=mark.color,
            markersize=8,
            linestyle="none",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label=label,
        )


def _load_baseline(baseline: Rows | str | Path | None) -> Rows | None:
    if baseline is None or (isinstance(baseline, Sequence) and not isinstance(baseline, str)):
        return baseline
    folder = Path(baseline)
    return read_jsonl(folder / "metrics.jsonl" if folder.is_dir() else folder)


@dataclass(frozen=True)
class _MetricView:
    """How a run's metric is shown: accuracy in percent, anything else as it is."""

    name: str
    lower_is_better: bool

    @property
    def is_accuracy(self) -> bool:
        return self.name == "accuracy"

    def scaled(self, value: float) -> float:
        return 100 * value if self.is_accuracy else value

    def text(self, value: Any) -> str:
        number = _number(value)
        if not math.isfinite(number):
            return "n/a"
        return f"{100 * number:.2f} %" if self.is_accuracy else f"{number:.4f}"

    @property
    def label(self) -> str:
        return "accuracy (%)" if self.is_accuracy else self.name.replace("_", " ")


def _metric_view(summary: Mapping[str, Any] | None) -> _MetricView:
    summary = summary or {}
    lower = summary.get("metric_direction") == "METRIC_DIRECTION_LOWER_IS_BETTER"
    return _MetricView(str(summary.get("metric_name") or "accuracy"), lower)


def _test_metric(summary: Mapping[str, Any]) -> float:
    # A summary written before runs named their metric has only the accuracy.
    return _number(summary.get("final_test_metric" if summary.get("metric_name") else "final_test_accuracy"))


def _title(summary: Mapping[str, Any] | None, folder: Path) -> str:
    if not summary:
        return folder.name
    mode = "static baseline" if summary.get("static") else "morphogenetic"
    parts = [str(summary.get("run_id") or folder.name), str(summary.get("dataset", "")), mode]
    view = _metric_view(summary)
    test = _test_metric(summary)
    if math.isfinite(test):
        parts.append(f"final test {view.name.replace('_', ' ')} {view.text(test)}")
    return "  ·  ".join(p for p in parts if p)


TRAIN_COLOR, VAL_COLOR = "#ff7f0e", "#17becf"
# Points between a panel and its title, clear of the transition markers on the top edge.
TITLE_PAD = 12
BASELINE_STYLE: dict[str, Any] = {"color": "#7f7f7f", "linestyle": "--", "linewidth": 1.5}


def _accuracy_panel(ax: Axes, metrics: Rows, baseline: Rows | None, summary: Mapping[str, Any] | None) -> None:
    view = _metric_view(summary)
    # Runs written before the metric fields existed only have the accuracy ones.
    train_key, val_key = (
        ("train_metric", "val_metric")
        if metrics and "val_metric" in metrics[0]
        else (
            "train_accuracy",
            "val_accuracy",
        )
    )
    for key, label, color in ((train_key, "train", TRAIN_COLOR), (val_key, "validation", VAL_COLOR)):
        xs, ys = _series(metrics, key)
        ax.plot(xs, [view.scaled(y) for y in ys], color=color, linewidth=2, label=label)
    if baseline:
        xs, ys = _series(baseline, val_key)
        ax.plot(xs, [view.scaled(y) for y in ys], **BASELINE_STYLE, label="static baseline (validation)")
    test = _test_metric(summary or {})
    if metrics and math.isfinite(test):
        last = _number(metrics[-1].get("epoch"), len(metrics) - 1)
        ax.plot(
            [last],
            [view.scaled(test)],
            marker="*",
            color="black",
            markersize=12,
            linestyle="none",
            label=f"final test {view.text(test)}",
        )
    ax.set_title("Accuracy" if view.is_accuracy else view.name.replace("_", " ").capitalize(), pad=TITLE_PAD)
    ax.set_ylabel(view.label)


def _loss_panel(ax: Axes, metrics: Rows, baseline: Rows | None) -> None:
    for key, label, color in (("train_loss", "train", TRAIN_COLOR), ("val_loss", "validation", VAL_COLOR)):
        xs, ys = _series(metrics, key)
        ax.plot(xs, ys, color=color, linewidth=2, label=label)
    if baseline:
        xs, ys = _series(baseline, "val_loss")
        ax.plot(xs, ys, **BASELINE_STYLE, label="static baseline (validation)")
    ax.set_title("Loss", pad=TITLE_PAD)
    ax.set_ylabel("cross-entropy")


def _parameter_panel(ax: Axes, metrics: Rows, baseline: Rows | None) -> None:
    xs, ys = _series(metrics, "parameter_count")
    ax.step(xs, ys, where="post", color="#8c564b", linewidth=2, label="model")
    if baseline:
        bx, by = _series(baseline, "parameter_count")
        ax.step(bx, by, where="post", **BASELINE_STYLE, label="static baseline")
    ax.set_title("Trainable parameters", pad=TITLE_PAD)
    ax.set_ylabel("parameters")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:,.0f}")


def render_report(run_dir: str | Path, *, baseline_metrics: Rows | str | Path | None = None) -> Path:
    """Render `report.png` in `run_dir` from its metrics.jsonl and events.jsonl.

    Panels: train/validation accuracy with the seed transitions marked (germinated,
    fossilized, culled, rolled back), losses, and the parameter count per epoch.
    `baseline_metrics` (metrics rows, or a static run's folder or metrics.jsonl)
    adds the static baseline as a dashed grey line. Returns the PNG's path.
    """
    folder = RunFolder(run_dir)
    metrics, events, summary = folder.read_metrics(), folder.read_events(), folder.read_summary()
    baseline = _load_baseline(baseline_metrics)
    transitions = _transitions(events)

    figure = Figure(figsize=(16, 5), dpi=100, layout="constrained")
    accuracy, loss, parameters = figure.subplots(1, 3)
    _accuracy_panel(accuracy, metrics, baseline, summary)
    _loss_panel(loss, metrics, baseline)
    _parameter_panel(parameters, metrics, baseline)
    for ax in (accuracy, loss, parameters):
        _mark_transitions(ax, transitions, with_labels=ax is accuracy)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    if not metrics:
        accuracy.text(0.5, 0.5, "no epochs recorded", ha="center", va="center", transform=accuracy.transAxes)
    figure.suptitle(_title(summary, folder.path), fontsize=13)
    path = folder.path / REPORT_FILE
    figure.savefig(path)
    return path


# --- text summary ---------------------------------------------------------------------------------


def _count(value: Any) -> str:
    number = _number(value)
    return f"{int(number):,}" if math.isfinite(number) else "n/a"


def _baseline_line(summary: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    view = _metric_view(summary)
    ours, theirs = _test_metric(summary), _test_metric(baseline)
    if not (math.isfinite(ours) and math.isfinite(theirs)):
        return f"vs static baseline     n/a (missing test {view.name})"
    params = f"{_count(summary.get('params_final'))} vs {_count(baseline.get('params_final'))} parameters"
    better = (theirs - ours) if view.lower_is_better else (ours - theirs)
    shown = f"{100 * better:+.2f} points" if view.is_accuracy else f"{better:+.4f}"
    if abs(better) < 0.00005:
        verdict = "tied with"
    elif better > 0:
        verdict = "BEAT"
    else:
        verdict = "did not beat"
    return f"vs static baseline     growth {verdict} it by {shown} ({view.text(ours)} vs {view.text(theirs)}; {params})"


def format_summary(summary: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> str:
    """A one-screen text summary of a run's summary.json.

    Compared with a static baseline's summary when `baseline` is given, or when the
    summary itself records one under "baseline".
    """
    mode = "static baseline" if summary.get("static") else "morphogenetic"
    header = f"Run {summary.get('run_id', '?')}  ·  {summary.get('dataset', '?')}  ·  {mode}"
    epochs, wall = _count(summary.get("epochs")), _number(summary.get("wall_seconds"))
    header += f"  ·  {epochs} epochs" + (f" in {wall:.1f} s" if math.isfinite(wall) else "")
    initial, final = _number(summary.get("params_initial")), _number(summary.get("params_final"))
    growth = f" ({final - initial:+,.0f})" if math.isfinite(initial) and math.isfinite(final) else ""
    budget = _number(summary.get("hook_budget_ms"))
    p50, p95 = _number(summary.get("hook_ms_p50")), _number(summary.get("hook_ms_p95"))
    hook = f"p50 {p50:.2f} ms, p95 {p95:.2f} ms"
    if math.isfinite(budget):
        hook += f" (budget {budget:g} ms)"
    view = _metric_view(summary)
    best = summary.get("best_val_metric" if summary.get("metric_name") else "best_val_accuracy")
    lines = [
        header,
        f"{'final test ' + view.name.replace('_', ' '):<23}{view.text(_test_metric(summary))}",
        f"{'best val ' + view.name.replace('_', ' '):<23}{view.text(best)}",
        f"parameters             {_count(initial)} -> {_count(final)}{growth}",
        f"seeds                  germinated {_count(summary.get('seeds_germinated', 0))}, "
        f"fossilized {_count(summary.get('seeds_fossilized', 0))}, "
        f"culled {_count(summary.get('seeds_culled', 0))}",
        f"epoch-end hook         {hook}",
        f"isolation violations   {_count(summary.get('isolation_violations', 0))}",
    ]
    if "rollbacks" in summary:
        lines.append(f"rollbacks              {_count(summary.get('rollbacks'))}")
    if summary.get("cancelled"):
        lines.append("cancelled              yes: stopped before its last epoch")
    recorded = summary.get("baseline")
    if baseline is None and isinstance(recorded, Mapping):
        baseline = recorded
    if baseline is not None:
        lines.append(_baseline_line(summary, baseline))
    return "\n".join(lines)
