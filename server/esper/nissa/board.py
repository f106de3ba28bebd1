"""The run board: what Nissa knows of live runs, built from the telemetry on Oona.

`RunBoard.observe` takes the envelopes of `esper.telemetry.>`: RunEvents (epoch
metrics, seed transitions, Tamiyo's decisions with their reasons, status changes,
alerts, notices), SeedTelemetry (stage, alpha, kernel of each seed) and
SystemStatePackets. It answers GetRunSummary and gives the mission-control page
its JSON snapshot. Memory is bounded: at most `max_runs` runs (finished runs are
forgotten first, oldest first) and bounded lists per run. Delivery is at least
once; a repeated message changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from esper import checks
from esper.errors import InvalidArgument, NotFound
from esper.leyline.v1 import nissa_pb2, run_pb2, telemetry_pb2
from esper.nissa.board_run import RecordLimits, RunRecord, seconds
from esper.nissa.board_view import run_summary, run_view
from esper.oona.api import Bus, ConsumerSpec, Subscription
from esper.oona.envelope import OpenedEnvelope

logger = logging.getLogger(__name__)

TELEMETRY_SUBJECTS = "esper.telemetry.>"
BOARD_CONSUMER = ConsumerSpec("nissa", (TELEMETRY_SUBJECTS,))


@dataclass(frozen=True)
class RunBoardConfig:
    """How many runs the board follows at once, and how much of each it keeps."""

    max_runs: int = 32
    limits: RecordLimits = field(default_factory=RecordLimits)

    def __post_init__(self) -> None:
        checks.positive("max_runs", self.max_runs)


class RunBoard:
    """Live runs as observed on the bus. Thread-safe; grpc- and nats-free."""

    def __init__(self, config: RunBoardConfig | None = None) -> None:
        self._config = config or RunBoardConfig()
        self._runs: dict[str, RunRecord] = {}
        self._version = 0
        self._changed = threading.Condition(threading.Lock())

    def observe(self, opened: OpenedEnvelope) -> None:
        """Apply one telemetry message. InvalidArgument when the board cannot use it (it changes nothing)."""
        message = opened.message
        if isinstance(message, run_pb2.RunEvent):
            run_id, when = message.run_id, seconds(message.event_time)
        elif isinstance(message, telemetry_pb2.SeedTelemetry):
            run_id, when = message.run_id, seconds(message.report_time)
        elif isinstance(message, telemetry_pb2.SystemStatePacket):
            run_id, when = message.run_id, seconds(message.packet_time)
        else:
            raise InvalidArgument.for_field("payload", f"the run board does not follow {message.DESCRIPTOR.name}")
        if not run_id:
            raise InvalidArgument.for_field("payload.run_id", f"{message.DESCRIPTOR.name} names no run")
        when = when or seconds(opened.envelope.publish_time)
        with self._changed:
            record = self._runs.get(run_id)
            fresh = record is None
            if record is None:
                record = RunRecord(run_id, self._config.limits)
            if not self._apply(record, message):
                return
            record.touch(when, opened.envelope.source)
            if fresh:
                self._runs[run_id] = record
                self._forget_beyond_limit()
            self._version += 1
            self._changed.notify_all()

    def run_ids(self) -> list[str]:
        """Runs on the board, newest first."""
        with self._changed:
            return [record.run_id for record in self._newest_first()]

    def summary(self, run_id: str) -> nissa_pb2.GetRunSummaryResponse:
        """The run's summary as observed on the bus; `alerts` is left for NissaService to fill."""
        with self._changed:
            record = self._runs.get(run_id)
            if record is None:
                raise NotFound(f"run_id: Nissa has seen no telemetry of run {run_id!r}", reason="RUN_NOT_FOUND")
            return nissa_pb2.GetRunSummaryResponse(
                run_id=run_id, summary=run_summary(record), last_epoch=record.last_epoch
            )

    def run_window(self, run_id: str) -> tuple[float, float | None] | None:
        """(start, end) of the run in seconds since the epoch, end None while it runs; None if unknown."""
        with self._changed:
            record = self._runs.get(run_id)
            if record is None or not record.first_time:
                return None
            return record.first_time, (record.end_time or None)

    def snapshot(self) -> dict[str, Any]:
        """Every run, newest first, as JSON-ready data for the mission-control page."""
        with self._changed:
            return {
                "version": self._version,
                "time": time.time(),
                "runs": [run_view(record) for record in self._newest_first()],
            }

    @property
    def version(self) -> int:
        """Grows by one with every change the board makes."""
        with self._changed:
            return self._version

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until the version passes `version` or `timeout` seconds pass; the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version, timeout)
            return self._version

    # Under the lock

    def _apply(self, record: RunRecord, message: Any) -> bool:
        if isinstance(message, run_pb2.RunEvent):
            return record.apply_event(message)
        if isinstance(message, telemetry_pb2.SeedTelemetry):
            return record.apply_telemetry(message)
        return record.apply_state(message)

    def _newest_first(self) -> list[RunRecord]:
        return sorted(self._runs.values(), key=lambda r: (r.first_time, r.run_id), reverse=True)

    def _forget_beyond_limit(self) -> None:
        while len(self._runs) > self._config.max_runs:
            # Finished runs go first, then the runs heard from least recently.
            victim = min(self._runs.values(), key=lambda r: (not r.finished, r.last_time, r.run_id))
            logger.info("run board: forgetting run %s (%d runs followed at most)", victim.run_id, self._config.max_runs)
            del self._runs[victim.run_id]


def board_intake(board: RunBoard) -> Callable[[Bus], Subscription]:
    """Subscribe the board to every run's telemetry as durable consumer "nissa".

    A message the board cannot use is logged and acked: retrying it would never help.
    """

    def handle(opened: OpenedEnvelope) -> None:
        try:
            board.observe(opened)
        except InvalidArgument as exc:
            logger.warning(
                "run board: skipped a %s message from %r: %s",
                opened.message.DESCRIPTOR.name,
                opened.envelope.source,
                exc,
            )
        except Exception:
            logger.exception(
                "run board: could not apply a %s message from %r",
                opened.message.DESCRIPTOR.name,
                opened.envelope.source,
            )

    def subscribe(bus: Bus) -> Subscription:
        return bus.subscribe(BOARD_CONSUMER, handle)

    return subscribe
