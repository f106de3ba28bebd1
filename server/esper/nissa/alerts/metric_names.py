"""Which metrics a rule's PromQL reads, and whether any server exports them.

An alert on a metric nobody exports can never fire, silently; the check here
makes that a test failure instead. Names are read from the expression text: the
rules use a small part of PromQL (selectors, range functions, aggregations,
comparisons), which a few substitutions take apart reliably.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from esper.nissa.alerts.rules import AlertRule

# Made by the scraper (Prometheus or Nissa's), never exported by a server.
SCRAPER_METRICS = frozenset({"up"})

_KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
        "offset", "Inf", "NaN", "inf", "nan",
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
        "quantile",
    }
)  # fmt: skip
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[([^\]]*)\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# The sample names a metric family of each type exposes (prometheus_client family names have no _total).
_SUFFIXES_BY_TYPE: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


class MetricFamily(Protocol):
    """What prometheus_client's registry.collect() yields (name and type are all we need)."""

    name: str
    type: str


def metric_names_in(expr: str) -> frozenset[str]:
    """The metric names a PromQL expression selects, e.g. {"esper_oona_queue_depth"}."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _WORD.finditer(text):
        word = match.group()
        if word in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return frozenset(names)


def range_seconds_in(expr: str) -> tuple[float, ...]:
    """The range selectors' durations in an expression, in seconds ("[10m]" -> 600)."""
    return tuple(duration_seconds(body) for body in _RANGE.findall(_STRING.sub('""', expr)))


def duration_seconds(text: str) -> float:
    """A Prometheus duration in seconds: "15s" -> 15, "1h30m" -> 5400, "1500ms" -> 1.5."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"{text!r} is not a Prometheus duration such as 15s, 5m or 1h30m")
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def exported_sample_names(families: Iterable[MetricFamily]) -> frozenset[str]:
    """Every sample name the metric families can expose, e.g. a histogram's _bucket, _sum and _count."""
    names = set()
    for family in families:
        for suffix in _SUFFIXES_BY_TYPE.get(family.type, ("",)):
            names.add(family.name + suffix)
    return frozenset(names)


def unexported_metrics(rules: Iterable[AlertRule], exported: Iterable[str]) -> dict[str, frozenset[str]]:
    """Rule name -> the metrics its expr reads that nobody exports (rules reading only known ones are left out)."""
    known = frozenset(exported) | SCRAPER_METRICS
    missing = {}
    for rule in rules:
        unknown = metric_names_in(rule.expr) - known
        if unknown:
            missing[rule.name] = unknown
    return missing
