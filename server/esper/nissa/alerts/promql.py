"""The few PromQL operations Nissa's alert rules use, computed the way Prometheus computes them.

Each function mirrors one PromQL construct (instant selector, increase/rate with
Prometheus' extrapolation and counter-reset handling, sum/max by, histogram_quantile
with linear interpolation, a comparison filter), so a rule's Python evaluation
reads like its `expr` and gives the same numbers: the promtool test files are run
through both (tests/unit/nissa/alerts/test_alerts_promtool_parity.py).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from esper.nissa.alerts.series import Labels, SampleHistory, in_window, labels_of, latest


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: labels (no metric name) and a value."""

    labels: Labels
    value: float

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


Vector = list[Sample]


@dataclass(frozen=True)
class Matcher:
    """A label matcher: `label="value"`, or `label!="value"` when `equal` is False."""

    label: str
    value: str
    equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (labels.get(self.label, "") == self.value) == self.equal


def select(history: SampleHistory, name: str, matchers: Sequence[Matcher], now: float) -> Vector:
    """`name{matchers}`: each matching series' latest sample within the lookback, unless stale."""
    found: Vector = []
    for key, points in history.series(name):
        if not all(m.matches(dict(key.labels)) for m in matchers):
            continue
        value = latest(points, now)
        if value is not None:
            found.append(Sample(key.labels, value))
    return found


def increase(history: SampleHistory, name: str, matchers: Sequence[Matcher], now: float, window: float) -> Vector:
    """`increase(name{matchers}[window])`."""
    return _range_function(history, name, matchers, now, window, is_rate=False)


def rate(history: SampleHistory, name: str, matchers: Sequence[Matcher], now: float, window: float) -> Vector:
    """`rate(name{matchers}[window])`: per-second increase."""
    return _range_function(history, name, matchers, now, window, is_rate=True)


def _range_function(
    history: SampleHistory, name: str, matchers: Sequence[Matcher], now: float, window: float, *, is_rate: bool
) -> Vector:
    found: Vector = []
    for key, points in history.series(name):
        if not all(m.matches(dict(key.labels)) for m in matchers):
            continue
        value = extrapolated_increase(in_window(points, now, window), now - window, now)
        if value is not None:
            found.append(Sample(key.labels, value / window if is_rate else value))
    return found


def extrapolated_increase(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """A counter's increase over [start, end] from its samples there, as Prometheus' extrapolatedRate.

    A drop in value is a counter reset (the process restarted): the value before the
    drop is added back. The increase between the first and last sample is then
    extrapolated towards the window's edges, but by at most half an average sample
    interval where the series seems to start or end inside the window, and never
    below a counter value of zero. None with fewer than two samples.
    """
    if len(samples) < 2:
        return None
    first_time, first_value = samples[0]
    last_time, last_value = samples[-1]
    result = last_value - first_value
    previous = 0.0
    for _, value in samples:
        if value < previous:
            result += previous
        previous = value
    to_start = first_time - start
    to_end = end - last_time
    sampled = last_time - first_time
    average_gap = sampled / (len(samples) - 1)
    if result > 0 and first_value >= 0:
        to_zero = sampled * (first_value / result)
        to_start = min(to_start, to_zero)
    threshold = average_gap * 1.1
    extrapolate_to = sampled
    extrapolate_to += to_start if to_start < threshold else average_gap / 2
    extrapolate_to += to_end if to_end < threshold else average_gap / 2
    return result * (extrapolate_to / sampled)


# Summed in series order, as Prometheus adds them.
_AGGREGATIONS: dict[str, Callable[[Iterable[float]], float]] = {"sum": sum, "max": max}


def aggregate(vector: Vector, how: str, by: Sequence[str]) -> Vector:
    """`how by (by...) (vector)` for how in sum, max; groups keep only the `by` labels."""
    combine = _AGGREGATIONS[how]
    groups: dict[Labels, list[float]] = {}
    for sample in vector:
        kept = labels_of({name: value for name, value in sample.labels if name in by and value})
        groups.setdefault(kept, []).append(sample.value)
    return [Sample(labels, combine(values)) for labels, values in groups.items()]


def histogram_quantile(quantile: float, buckets: Vector) -> Vector:
    """`histogram_quantile(quantile, buckets)`: buckets carry `le`; one result per other label set."""
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for sample in buckets:
        labels = dict(sample.labels)
        try:
            upper = float(labels.pop("le"))
        except (KeyError, ValueError):
            continue
        groups.setdefault(labels_of(labels), []).append((upper, sample.value))
    return [Sample(labels, bucket_quantile(quantile, counts)) for labels, counts in groups.items()]


def bucket_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The quantile of cumulative (upper bound, count) buckets, interpolating linearly inside a bucket.

    As Prometheus: NaN without a +Inf bucket or without observations; a quantile in
    the +Inf bucket answers the highest finite bound.
    """
    if math.isnan(quantile):
        return math.nan
    if quantile < 0:
        return -math.inf
    if quantile > 1:
        return math.inf
    merged: dict[float, float] = {}
    for upper, count in buckets:
        merged[upper] = merged.get(upper, 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    counts = _monotonic([count for _, count in ordered])
    bounds = [upper for upper, _ in ordered]
    if len(bounds) < 2 or counts[-1] == 0:
        return math.nan
    rank = quantile * counts[-1]
    index = next((i for i in range(len(bounds) - 1) if counts[i] >= rank), len(bounds) - 1)
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[index]
    if index > 0:
        start = bounds[index - 1]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    if count == 0:
        return math.nan
    return start + (bounds[index] - start) * (rank / count)


def _monotonic(counts: list[float]) -> list[float]:
    # Buckets scraped at slightly different moments can be non-cumulative by a hair.
    highest = -math.inf
    fixed = []
    for count in counts:
        highest = max(highest, count)
        fixed.append(highest)
    return fixed


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "==": operator.eq,
}


def compare(vector: Vector, comparison: str, threshold: float) -> Vector:
    """`vector <comparison> threshold` as a filter: the samples for which it holds."""
    holds = _COMPARISONS[comparison]
    return [sample for sample in vector if holds(sample.value, threshold)]


def comparisons() -> frozenset[str]:
    return frozenset(_COMPARISONS)
