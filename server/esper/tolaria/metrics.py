"""Tolaria's and Kasmina's Prometheus observations: hook phases, epochs, seeds by stage.

Several runs can train in one Tolaria process, so seeds by stage is a census: each
run reports its own counts, the gauge shows their sum, and a finished run leaves it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from esper.leyline.v1 import lifecycle_pb2
from esper.observability import metrics
from esper.tolaria.hook import HookOutcome

_STAGES = tuple(
    name.removeprefix("SEED_STAGE_") for name in lifecycle_pb2.SeedStage.keys() if not name.endswith("UNSPECIFIED")
)


def observe_hook(outcome: HookOutcome) -> None:
    """One epoch boundary's phase timings, and whether Tamiyo answered."""
    phases = {
        "assemble": outcome.assemble_ms,
        "controller": outcome.controller_ms,
        "apply": outcome.apply_ms,
        "total": outcome.total_ms,
    }
    for phase, millis in phases.items():
        metrics.TOLARIA_HOOK_DURATION.labels(phase=phase).observe(millis / 1000.0)
    if outcome.controller_error:
        metrics.TOLARIA_CONTROLLER_UNAVAILABLE.inc()


def observe_epoch(wall_seconds: float) -> None:
    metrics.TOLARIA_EPOCH_DURATION.observe(wall_seconds)


class SeedCensus:
    """Seeds by stage over every run of the process, published to esper_kasmina_seeds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Counter[str]] = {}

    def update(self, run_id: str, stages: Mapping[str, str]) -> None:
        """`stages`: seed id -> stage name (without the SEED_STAGE_ prefix) of one run, now."""
        with self._lock:
            self._runs[run_id] = Counter(stages.values())
            self._publish()

    def forget(self, run_id: str) -> None:
        with self._lock:
            if self._runs.pop(run_id, None) is not None:
                self._publish()

    def _publish(self) -> None:
        total: Counter[str] = Counter()
        for counts in self._runs.values():
            total.update(counts)
        for stage in _STAGES:
            metrics.KASMINA_SEEDS.labels(stage=stage).set(total.get(stage, 0))


SEED_CENSUS = SeedCensus()
