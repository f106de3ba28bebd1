"""One run as the board has observed it on the bus: its curve, seeds, decisions, transitions and alerts.

Delivery is at least once and, across subjects, in no guaranteed order, so every
update is keyed and applied only when it is new: run events by their gap-free
sequence number, seed telemetry by (epoch, global step), state packets by epoch.
A repeat changes nothing. A seed's stage comes from whichever source is later in
the run: telemetry of epoch e reports the stage before that epoch's boundary, and
the transitions and epoch record of epoch e (run events) the stage after it.

Not thread-safe: the board serializes access.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from google.protobuf import timestamp_pb2

from esper import checks
from esper.leyline.v1 import alert_pb2, control_pb2, lifecycle_pb2, run_pb2, telemetry_pb2
from esper.state.packet import BASIS_POINTS, layout_hash

TERMINAL_STATUSES = frozenset(
    {
        run_pb2.RUN_STATUS_SUCCEEDED,
        run_pb2.RUN_STATUS_FAILED,
        run_pb2.RUN_STATUS_CANCELLED,
    }
)
# Stage keys order the sources of a seed's stage within one epoch (see the module docstring).
_BEFORE_BOUNDARY, _AFTER_BOUNDARY = 0, 1

T = TypeVar("T")


def seconds(stamp: timestamp_pb2.Timestamp) -> float:
    """A Timestamp as seconds since the epoch; 0.0 when unset."""
    return stamp.seconds + stamp.nanos / 1e9


class SequenceWindow:
    """Which sequence numbers of a gap-free stream were applied, in bounded memory.

    Everything up to `through` counts as seen; later numbers are kept one by one.
    When more than `limit` are kept (an early event never came, e.g. it aged out of
    the stream before the board subscribed), the missing ones are given up for lost.
    """

    def __init__(self, limit: int) -> None:
        self.through = 0
        self._later: set[int] = set()
        self._limit = limit

    def add(self, sequence: int) -> bool:
        """Record `sequence`; False if it was seen already (or given up for lost)."""
        if sequence <= self.through or sequence in self._later:
            return False
        self._later.add(sequence)
        if len(self._later) > self._limit:
            self.through = min(self._later) - 1
        while self.through + 1 in self._later:
            self.through += 1
            self._later.discard(self.through)
        return True


class Recent(Generic[T]):
    """The `limit` entries with the highest sequence numbers, kept in sequence order."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._keys: list[int] = []
        self._items: list[T] = []

    def add(self, sequence: int, item: T) -> None:
        index = bisect.bisect(self._keys, sequence)
        self._keys.insert(index, sequence)
        self._items.insert(index, item)
        if len(self._keys) > self._limit:
            del self._keys[0], self._items[0]

    def newest_first(self) -> list[tuple[int, T]]:
        return list(zip(reversed(self._keys), reversed(self._items), strict=True))

    def oldest_first(self) -> list[tuple[int, T]]:
        return list(zip(self._keys, self._items, strict=True))


@dataclass
class EpochPoint:
    """One epoch of the curve. Fields a state packet does not carry stay None until EpochMetrics arrives."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    train_accuracy: float | None = None
    parameter_count: int | None = None
    hook_ms: float | None = None
    sequence: int = 0  # the RunEvent it came from; 0 for a state packet


@dataclass
class SeedView:
    """The latest known state of one seed."""

    seed_id: str
    stage: int = lifecycle_pb2.SEED_STAGE_UNSPECIFIED
    alpha: float = 0.0
    epoch: int = 0
    kernel_id: str = ""
    blueprint_id: str = ""
    eval_gain: float = 0.0
    parameter_count: int = 0
    isolation_violations: int = 0
    ready: bool = False
    last_reason: str = ""
    stage_key: tuple[int, ...] = ()
    telemetry_key: tuple[int, ...] = ()


@dataclass
class RunRecord:
    """Everything the board knows of one run; `apply_*` return whether anything changed."""

    run_id: str
    limits: RecordLimits
    status: int = run_pb2.RUN_STATUS_RUNNING
    status_sequence: int = 0
    source: str = ""
    first_time: float = 0.0
    last_time: float = 0.0
    end_time: float = 0.0
    epochs: dict[int, EpochPoint] = field(default_factory=dict)
    seeds: dict[str, SeedView] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)  # seed ids in the order telemetry first named them
    layout_confirmed: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    sequences: SequenceWindow = field(init=False)
    decisions: Recent[control_pb2.AdaptationDecision] = field(init=False)
    transitions: Recent[run_pb2.SeedTransition] = field(init=False)
    notices: Recent[tuple[float, str]] = field(init=False)
    alerts: dict[str, tuple[int, alert_pb2.Alert]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sequences = SequenceWindow(self.limits.dedup_window)
        self.decisions = Recent(self.limits.decisions)
        self.transitions = Recent(self.limits.transitions)
        self.notices = Recent(self.limits.notices)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def last_epoch(self) -> int:
        seen = [*self.epochs, *(seed.epoch for seed in self.seeds.values())]
        return max(seen, default=0)

    def touch(self, when: float, source: str) -> None:
        if when > 0:
            self.first_time = min(self.first_time, when) if self.first_time else when
            self.last_time = max(self.last_time, when)
        if source:
            self.source = source

    # Run events

    def apply_event(self, event: run_pb2.RunEvent) -> bool:
        if event.sequence == 0 or not self.sequences.add(event.sequence):
            return False
        kind = event.WhichOneof("payload")
        if kind == "epoch_completed":
            self._epoch_completed(event.sequence, event.epoch_completed)
        elif kind == "seed_transition":
            self._seed_transition(event.sequence, event.seed_transition)
        elif kind == "decision":
            self.decisions.add(event.sequence, _copy(event.decision))
        elif kind == "status_change":
            self._status_change(event.sequence, event.status_change, seconds(event.event_time))
        elif kind == "alert":
            self._alert(event.sequence, event.alert)
        elif kind == "field_report":
            self._field_report(event.field_report)
        elif kind == "notice":
            self.notices.add(event.sequence, (seconds(event.event_time), event.notice))
        return True

    def _epoch_completed(self, sequence: int, metrics: run_pb2.EpochMetrics) -> None:
        known = self.epochs.get(metrics.epoch)
        if known is not None and known.sequence > sequence:
            return  # a later record of the same epoch (after a rollback) wins
        self.epochs[metrics.epoch] = EpochPoint(
            epoch=metrics.epoch,
            train_loss=metrics.train_loss,
            val_loss=metrics.val_loss,
            val_accuracy=metrics.val_accuracy,
            train_accuracy=metrics.train_accuracy,
            parameter_count=metrics.parameter_count,
            hook_ms=metrics.hook_ms,
            sequence=sequence,
        )
        self._trim_epochs()
        for seed_id, stage_name in metrics.seed_stages.items():
            stage = _stage_value(stage_name)
            if stage is not None:
                self._set_stage(seed_id, stage, (metrics.epoch, _AFTER_BOUNDARY, sequence))

    def _seed_transition(self, sequence: int, transition: run_pb2.SeedTransition) -> None:
        self.transitions.add(sequence, _copy(transition))
        entered = lifecycle_pb2.SeedStage.Name(transition.to_stage).removeprefix("SEED_STAGE_").lower()
        self.counts[entered] = self.counts.get(entered, 0) + 1
        key = (transition.epoch, _AFTER_BOUNDARY, sequence)
        seed = self._set_stage(transition.seed_id, transition.to_stage, key)
        if seed is not None and seed.stage_key == key:
            seed.last_reason = transition.reason

    def _status_change(self, sequence: int, status: int, when: float) -> None:
        if sequence < self.status_sequence:
            return
        self.status, self.status_sequence = status, sequence
        self.end_time = when if status in TERMINAL_STATUSES else 0.0

    def _alert(self, sequence: int, alert: alert_pb2.Alert) -> None:
        key = alert.alert_id or f"{alert.name}@{sequence}"
        known = self.alerts.get(key)
        if known is None or known[0] < sequence:
            self.alerts[key] = (sequence, _copy(alert))
        while len(self.alerts) > self.limits.alerts:
            oldest = min(self.alerts, key=lambda name: self.alerts[name][0])
            del self.alerts[oldest]

    def _field_report(self, report: control_pb2.FieldReport) -> None:
        seed = self._seed(report.seed_id)
        if seed is not None:
            seed.blueprint_id = report.blueprint_id or seed.blueprint_id
            seed.kernel_id = seed.kernel_id or report.kernel_id

    # Telemetry

    def apply_telemetry(self, report: telemetry_pb2.SeedTelemetry) -> bool:
        seed = self._seed(report.seed_id)
        key = (report.epoch, report.global_step)
        if seed is None or key <= seed.telemetry_key:
            return False
        if not seed.telemetry_key:
            self.reported.append(seed.seed_id)
        seed.telemetry_key = key
        seed.epoch = report.epoch
        seed.alpha = report.alpha
        seed.kernel_id = report.kernel_id or seed.kernel_id
        seed.eval_gain = report.eval_gain
        seed.parameter_count = report.parameter_count
        seed.isolation_violations = max(seed.isolation_violations, report.isolation_violations)
        seed.ready = report.is_ready_for_transition
        self._set_stage(report.seed_id, report.stage, (report.epoch, _BEFORE_BOUNDARY, report.global_step))
        return True

    def apply_state(self, packet: telemetry_pb2.SystemStatePacket) -> bool:
        """An epoch-boundary packet: a curve point when no EpochMetrics came, and per-seed stage/alpha
        when the seed layout the board inferred matches the packet's layout hash."""
        if packet.epoch in self.epochs:
            return False
        self.epochs[packet.epoch] = EpochPoint(
            epoch=packet.epoch,
            train_loss=packet.training_loss,
            val_loss=packet.validation_loss,
            val_accuracy=packet.validation_accuracy,
        )
        self._trim_epochs()
        order = self.seed_order()
        if len(order) == len(packet.seed_stages) and layout_hash(order) == packet.layout_hash:
            self.layout_confirmed = True
            for index, seed_id in enumerate(order):
                seed = self.seeds[seed_id]
                if (packet.epoch, packet.global_step) > seed.telemetry_key and index < len(packet.seed_alpha_bp):
                    seed.alpha = packet.seed_alpha_bp[index] / BASIS_POINTS
                stage_key = (packet.epoch, _BEFORE_BOUNDARY, packet.global_step)
                self._set_stage(seed_id, packet.seed_stages[index], stage_key)
        return True

    # Helpers

    def seed_order(self) -> list[str]:
        """Seed ids by layer, input side first.

        SeedTelemetry names no layer, but Kasmina reports a boundary's seeds in its seed
        layout's order, which is layer order; seeds known only from run events follow, by id.
        """
        listed = set(self.reported)
        return [*self.reported, *sorted(seed_id for seed_id in self.seeds if seed_id not in listed)]

    def _seed(self, seed_id: str) -> SeedView | None:
        seed = self.seeds.get(seed_id)
        if seed is None and seed_id and len(self.seeds) < self.limits.seeds:
            seed = self.seeds[seed_id] = SeedView(seed_id=seed_id)
        return seed

    def _set_stage(self, seed_id: str, stage: int, key: tuple[int, ...]) -> SeedView | None:
        seed = self._seed(seed_id)
        if seed is not None and stage != lifecycle_pb2.SEED_STAGE_UNSPECIFIED and key > seed.stage_key:
            seed.stage, seed.stage_key = stage, key
        return seed

    def _trim_epochs(self) -> None:
        while len(self.epochs) > self.limits.epochs:
            del self.epochs[min(self.epochs)]

    def hook_ms(self) -> list[float]:
        return [p.hook_ms for p in self.epochs.values() if p.hook_ms is not None and math.isfinite(p.hook_ms)]


@dataclass(frozen=True)
class RecordLimits:
    """How much of one run the board keeps: the newest entries of each list."""

    epochs: int = 2000
    seeds: int = 256
    decisions: int = 50
    transitions: int = 200
    notices: int = 50
    alerts: int = 50
    dedup_window: int = 4096

    def __post_init__(self) -> None:
        for name in ("epochs", "seeds", "decisions", "transitions", "notices", "alerts", "dedup_window"):
            checks.positive(name, getattr(self, name))


M = TypeVar("M", control_pb2.AdaptationDecision, run_pb2.SeedTransition, alert_pb2.Alert)


def _copy(message: M) -> M:
    """A detached copy: the event the message came from is not kept."""
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


def _stage_value(name: str) -> int | None:
    """A stage from EpochMetrics.seed_stages ("TRAINING" or "SEED_STAGE_TRAINING"); None if unknown."""
    full = name if name.startswith("SEED_STAGE_") else f"SEED_STAGE_{name}"
    try:
        return int(lifecycle_pb2.SeedStage.Value(full))
    except ValueError:
        return None
