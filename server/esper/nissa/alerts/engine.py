"""Nissa's alert engine: scrape every target, keep the samples, evaluate every rule.

An alert is one rule and one label set. It is pending while the rule holds for less
than the rule's `for`, firing once it has held that long, and resolved when the
rule stops holding (a pending alert that stops holding is just forgotten), exactly
Prometheus' life cycle, so Nissa and a Prometheus with deploy/'s rule file agree.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from esper.leyline.v1 import alert_pb2
from esper.nissa.alerts.config import NissaAlertsConfig
from esper.nissa.alerts.metric_names import metric_names_in, range_seconds_in
from esper.nissa.alerts.rules import RULES, AlertRule
from esper.nissa.alerts.scrape import Fetch, Scraper, TargetScrape, current_targets, fetch_metrics
from esper.nissa.alerts.series import LOOKBACK_SECONDS, Labels, SampleHistory, SeriesKey, labels_of

logger = logging.getLogger(__name__)

UP = "up"
FIRING = alert_pb2.ALERT_STATE_FIRING
RESOLVED = alert_pb2.ALERT_STATE_RESOLVED
ANY_STATE = alert_pb2.ALERT_STATE_UNSPECIFIED


@dataclass
class _Active:
    """A pending or firing alert."""

    active_since: float
    value: float
    fired_at: float | None = None
    alert_id: str = field(default="")


class AlertEngine:
    """Scrapes, remembers and evaluates; `alerts()` answers what is firing and what resolved.

    Safe to call from several threads: a background task runs scrape_and_evaluate
    while rpcs read alerts.
    """

    def __init__(
        self,
        config: NissaAlertsConfig,
        *,
        rules: Sequence[AlertRule] = RULES,
        fetch: Fetch = fetch_metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.rules = tuple(rules)
        self._clock = clock
        wanted = frozenset().union(*(metric_names_in(rule.expr) for rule in self.rules)) - {UP}
        self._scraper = Scraper(fetch, config.scrape_timeout_seconds, wanted)
        self.history = SampleHistory(retention_for(self.rules, config.evaluation_interval_seconds))
        self._series_by_target: dict[tuple[str, str], set[SeriesKey]] = {}
        self._active: dict[tuple[str, Labels], _Active] = {}
        self._resolved: deque[alert_pb2.Alert] = deque(maxlen=config.max_resolved)
        self._lock = threading.Lock()

    def scrape_and_evaluate(self) -> None:
        """One cycle: scrape every current target, record what they said, evaluate every rule."""
        targets = current_targets(self.config)
        scrapes = self._scraper.scrape(targets)
        now = self._clock()
        self.record(scrapes, now)
        self.evaluate(now)

    def record(self, scrapes: Sequence[TargetScrape], now: float) -> None:
        """Store one cycle's scrapes at `now`, with `up` per target and stale markers for what vanished."""
        current = set()
        for scrape in scrapes:
            target_key = (scrape.target.job, scrape.target.instance)
            current.add(target_key)
            up_key = SeriesKey(UP, labels_of({"job": scrape.target.job, "instance": scrape.target.instance}))
            seen = {up_key}
            self.history.append(up_key, now, 1.0 if scrape.up else 0.0)
            for sample in scrape.samples or ():
                key = SeriesKey(sample.name, sample.labels)
                seen.add(key)
                self.history.append(key, now, sample.value)
            self.history.mark_stale(self._series_by_target.get(target_key, set()) - seen, now)
            self._series_by_target[target_key] = seen
        for gone in set(self._series_by_target) - current:
            self.history.mark_stale(self._series_by_target.pop(gone), now)
        self.history.prune(now)

    def evaluate(self, now: float) -> None:
        """Evaluate every rule at `now`: start, fire, update and resolve alerts."""
        for rule in self.rules:
            holding = {sample.labels: sample.value for sample in rule.evaluate(self.history, now)}
            with self._lock:
                self._advance(rule, holding, now)

    def _advance(self, rule: AlertRule, holding: dict[Labels, float], now: float) -> None:
        hold_for = self.config.for_overrides.get(rule.name, rule.for_seconds)
        for labels, value in holding.items():
            active = self._active.setdefault((rule.name, labels), _Active(active_since=now, value=value))
            active.value = value
            if active.fired_at is None and now - active.active_since >= hold_for:
                active.fired_at = now
                active.alert_id = uuid.uuid4().hex
                logger.warning("alert %s firing: %s", rule.name, rule.summary_for(labels, value))
        for name, labels in [key for key in self._active if key[0] == rule.name and key[1] not in holding]:
            active = self._active.pop((name, labels))
            if active.fired_at is not None:
                resolved = _alert(rule, labels, active, RESOLVED)
                resolved.resolve_time.FromNanoseconds(_nanoseconds(now))
                self._resolved.append(resolved)
                logger.info("alert %s resolved: %s", rule.name, resolved.summary)

    def alerts(self, state: alert_pb2.AlertState = ANY_STATE) -> list[alert_pb2.Alert]:
        """Firing and resolved alerts (or only those in `state`), newest first."""
        rules = {rule.name: rule for rule in self.rules}
        with self._lock:
            found = []
            if state in (ANY_STATE, FIRING):
                found += [
                    _alert(rules[name], labels, active, FIRING)
                    for (name, labels), active in self._active.items()
                    if active.fired_at is not None
                ]
            if state in (ANY_STATE, RESOLVED):
                found += [_copy(alert) for alert in self._resolved]
        found.sort(key=lambda alert: (alert.start_time.ToNanoseconds(), alert.resolve_time.ToNanoseconds()))
        return found[::-1]


def retention_for(rules: Sequence[AlertRule], interval_seconds: float) -> float:
    """How long samples must be kept: the longest range any rule reads, or the lookback, plus two cycles."""
    longest = max([LOOKBACK_SECONDS, *(seconds for rule in rules for seconds in range_seconds_in(rule.expr))])
    return longest + 2 * interval_seconds


def _alert(rule: AlertRule, labels: Labels, active: _Active, state: alert_pb2.AlertState) -> alert_pb2.Alert:
    alert = alert_pb2.Alert(
        alert_id=active.alert_id,
        name=rule.name,
        severity=rule.severity,
        state=state,
        summary=rule.summary_for(labels, active.value),
        labels=dict(labels),
        value=active.value,
        threshold=rule.threshold,
    )
    alert.start_time.FromNanoseconds(_nanoseconds(active.fired_at if active.fired_at is not None else 0.0))
    return alert


def _copy(alert: alert_pb2.Alert) -> alert_pb2.Alert:
    copied = alert_pb2.Alert()
    copied.CopyFrom(alert)
    return copied


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)
