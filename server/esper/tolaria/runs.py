"""The TolariaService in process: training runs, each in its own thread, and their event streams.

A run is PENDING from CreateRun until its trainer is built (waiting for a training
slot, loading data, settling kernels), RUNNING while it trains, then SUCCEEDED,
FAILED or CANCELLED with its summary. Every run trains through `run_training`
with the manager's collaborators factory, so an embedded factory and a mesh one run the
same code. Runs and their events live in memory while they are kept (finished runs
are forgotten after a retention period, the oldest first past a count); the run
folder on disk is the durable record.

Everything a caller can make the server do is bounded: run folders resolve inside
the runs root, `npz:` data inside the data root and the asset cache inside the
assets root; at most `max_pending_runs` wait for a training slot; a run has at most
`max_streams_per_run` event streams open and the server `max_streams` in all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted
from esper.leyline.v1 import run_pb2, tolaria_pb2
from esper.observability import metrics
from esper.paging import encode_page_token
from esper.tolaria.collaborators import CollaboratorsFactory, embedded_collaborators
from esper.tolaria.config import EsperConfig, RunManagerConfig
from esper.tolaria.events import RunEventLog, timestamp_now
from esper.tolaria.kasmina_router import KasminaRouter
from esper.tolaria.requests import (
    check_cancel_run,
    check_create_run,
    check_get_run,
    check_list_runs,
    check_stream_run_events,
    confine_run,
    list_filter_fingerprint,
)
from esper.tolaria.session import RunResult, new_run_id, run_training
from esper.tolaria.trainer import EpochRecord, TolariaTrainer, TrainingHistory

logger = logging.getLogger(__name__)

_LIVE = (run_pb2.RUN_STATUS_PENDING, run_pb2.RUN_STATUS_RUNNING)
_STATUSES = tuple(status for status in run_pb2.RunStatus.values() if status != run_pb2.RUN_STATUS_UNSPECIFIED)
_JOIN_SECONDS = 60.0


class RunEventFeed:
    """One run's events as streams read them: fed by the run's event log, followed live."""

    def __init__(self) -> None:
        self._events: list[run_pb2.RunEvent] = []
        self._ended = False
        self._changed = threading.Condition()
        self.open_streams = 0

    def append(self, event: run_pb2.RunEvent) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def stream(self, from_sequence: int, on_close: Callable[[], None] | None = None) -> RunEventStream:
        return RunEventStream(self, from_sequence, on_close)

    def _wait_from(self, index: int, stream: RunEventStream) -> list[run_pb2.RunEvent] | None:
        """Events from `index` on, waiting for some; None once the run ended or the stream closed."""
        with self._changed:
            while index >= len(self._events) and not self._ended and not stream.closed:
                self._changed.wait()
            if stream.closed or index >= len(self._events):
                return None
            return self._events[index:]

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class RunEventStream:
    """StreamRunEvents responses; `close()` (from any thread) ends a stream that is waiting."""

    def __init__(self, feed: RunEventFeed, from_sequence: int, on_close: Callable[[], None] | None = None) -> None:
        self._feed = feed
        self._index = max(0, from_sequence - 1)
        self._batch: list[run_pb2.RunEvent] = []
        self.closed = False
        self._on_close = on_close

    def __iter__(self) -> RunEventStream:
        return self

    def __next__(self) -> tolaria_pb2.StreamRunEventsResponse:
        if not self._batch:
            batch = self._feed._wait_from(self._index, self)
            if batch is None:
                self.close()
                raise StopIteration
            self._batch = batch
            self._index += len(batch)
        return tolaria_pb2.StreamRunEventsResponse(event=self._batch.pop(0))

    def close(self) -> None:
        """End the stream and give back its place (once, however often it is called)."""
        release, self._on_close = self._on_close, None
        self.closed = True
        self._feed._wake()
        if release is not None:
            release()


@dataclass
class _Run:
    """A run as the manager keeps it. `run` is only read or written under the manager's lock."""

    run: run_pb2.Run
    number: int
    request_key: bytes
    config: EsperConfig
    feed: RunEventFeed
    stop: threading.Event
    thread: threading.Thread | None = None
    ended_at: float | None = None


class RunManager:
    """TolariaService in process: create, get, list, cancel and follow training runs."""

    def __init__(
        self,
        config: RunManagerConfig,
        collaborators: CollaboratorsFactory = embedded_collaborators,
        *,
        kasmina: KasminaRouter | None = None,
    ) -> None:
        self.config = config
        self.kasmina = kasmina if kasmina is not None else KasminaRouter()
        self._collaborators = collaborators
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.max_concurrent_runs)
        self._closed = False
        self._open_streams = 0
        _import_torch_lazily_loaded_modules()

    # TolariaService

    def create_run(self, request: tolaria_pb2.CreateRunRequest) -> tolaria_pb2.CreateRunResponse:
        plan = check_create_run(request)
        key = request.SerializeToString(deterministic=True)
        with self._lock:
            if self._closed:
                raise FailedPrecondition("this Tolaria is shutting down; no new runs")
            self._forget_expired()
            existing = self._runs.get(plan.run_id) if plan.run_id else None
            if existing is not None:
                if existing.request_key != key:
                    raise AlreadyExists(f"run {plan.run_id!r} exists with other options", reason="ALREADY_EXISTS")
                return tolaria_pb2.CreateRunResponse(run=_copy(existing.run))
            self._check_room()
            run_id = plan.run_id or self._unused_run_id()
            config = confine_run(plan, self.config, run_id)
            self._check_folder_free(config)
            entry = _Run(
                run=_new_run(run_id, config, request.config.config_yaml),
                number=len(self._runs),
                request_key=key,
                config=config,
                feed=RunEventFeed(),
                stop=threading.Event(),
            )
            self._runs[run_id] = entry
            self._publish_statuses()
            entry.thread = threading.Thread(target=self._train, args=(entry,), name=f"run-{run_id}", daemon=True)
            entry.thread.start()
            logger.info(
                "run %s created: %s, %d epochs, folder %s",
                run_id,
                config.run.dataset,
                config.run.epochs,
                config.run.out,
            )
            return tolaria_pb2.CreateRunResponse(run=_copy(entry.run))

    def get_run(self, request: tolaria_pb2.GetRunRequest) -> tolaria_pb2.GetRunResponse:
        run_id = check_get_run(request)
        with self._lock:
            self._forget_expired()
            return tolaria_pb2.GetRunResponse(run=_copy(self._find(run_id).run))

    def list_runs(self, request: tolaria_pb2.ListRunsRequest) -> tolaria_pb2.ListRunsResponse:
        page = check_list_runs(request)
        with self._lock:
            self._forget_expired()
            newest_first = sorted(self._runs.values(), key=lambda entry: entry.number, reverse=True)
            chosen = [
                entry
                for entry in newest_first
                if (page.before is None or entry.number < page.before)
                and (not page.status or entry.run.status == page.status)
            ]
            response = tolaria_pb2.ListRunsResponse(runs=[_copy(entry.run) for entry in chosen[: page.page_size]])
        if len(chosen) > page.page_size:
            last = chosen[page.page_size - 1].number
            response.next_page_token = encode_page_token(last, list_filter_fingerprint(request))
        return response

    def cancel_run(self, request: tolaria_pb2.CancelRunRequest) -> tolaria_pb2.CancelRunResponse:
        run_id = check_cancel_run(request)
        with self._lock:
            entry = self._find(run_id)
            if entry.run.status in _LIVE and not entry.stop.is_set():
                entry.stop.set()
                logger.info("run %s: cancel requested", run_id)
            return tolaria_pb2.CancelRunResponse(run=_copy(entry.run))

    def stream_run_events(self, request: tolaria_pb2.StreamRunEventsRequest) -> RunEventStream:
        run_id, from_sequence = check_stream_run_events(request)
        with self._lock:
            feed = self._find(run_id).feed
            if feed.open_streams >= self.config.max_streams_per_run:
                raise ResourceExhausted(
                    f"run {run_id!r} already has {feed.open_streams} event streams open "
                    f"(at most {self.config.max_streams_per_run}); close one or retry later",
                    retry_after_seconds=5.0,
                )
            if self._open_streams >= self.config.max_streams:
                raise ResourceExhausted(
                    f"this Tolaria has {self._open_streams} event streams open (at most {self.config.max_streams})",
                    retry_after_seconds=5.0,
                )
            feed.open_streams += 1
            self._open_streams += 1

        def release() -> None:
            with self._lock:
                feed.open_streams -= 1
                self._open_streams -= 1

        return feed.stream(from_sequence, release)

    # Process lifecycle

    def close(self, timeout: float = _JOIN_SECONDS) -> None:
        """Refuse new runs, cancel the live ones and wait for their threads (at most `timeout` each)."""
        with self._lock:
            self._closed = True
            entries = list(self._runs.values())
        for entry in entries:
            entry.stop.set()
        for entry in entries:
            if entry.thread is not None:
                entry.thread.join(timeout)
                if entry.thread.is_alive():
                    logger.warning("run %s did not stop within %.0f s", entry.run.run_id, timeout)

    # The run's thread

    def _train(self, entry: _Run) -> None:
        run_id = entry.run.run_id
        with self._slots:
            if entry.stop.is_set():
                self._finish(entry, run_pb2.RUN_STATUS_CANCELLED, None, "cancelled before it started")
                return
            log = RunEventLog(run_id, sinks=[entry.feed.append])
            try:
                result = run_training(
                    entry.config,
                    run_id=run_id,
                    collaborators=self._collaborators,
                    events=log,
                    should_stop=entry.stop.is_set,
                    on_epoch=self._progress(entry),
                    on_trainer=self._started(entry, log),
                )
            except Exception as exc:
                logger.exception("run %s failed", run_id)
                self._finish(entry, run_pb2.RUN_STATUS_FAILED, None, f"{type(exc).__name__}: {exc}", log)
                return
            finally:
                self.kasmina.unregister(run_id)
        cancelled = bool(result.summary.get("cancelled")) or entry.stop.is_set()
        status = run_pb2.RUN_STATUS_CANCELLED if cancelled else run_pb2.RUN_STATUS_SUCCEEDED
        self._finish(entry, status, result, "", log)

    def _started(self, entry: _Run, log: RunEventLog) -> Any:
        def started(trainer: TolariaTrainer) -> None:
            if trainer.kasmina is not None:
                self.kasmina.register(entry.run.run_id, trainer.kasmina)
            with self._lock:
                entry.run.status = run_pb2.RUN_STATUS_RUNNING
                entry.run.start_time.CopyFrom(timestamp_now())
                self._publish_statuses()
            log.emit(status_change=run_pb2.RUN_STATUS_RUNNING)

        return started

    def _progress(self, entry: _Run) -> Any:
        def progress(record: EpochRecord, history: TrainingHistory) -> None:
            with self._lock:
                entry.run.current_epoch = record.metrics.epoch + 1

        return progress

    def _finish(
        self,
        entry: _Run,
        status: run_pb2.RunStatus,
        result: RunResult | None,
        error: str,
        log: RunEventLog | None = None,
    ) -> None:
        with self._lock:
            entry.run.status = status
            entry.ended_at = time.monotonic()
            entry.run.end_time.CopyFrom(timestamp_now())
            entry.run.error_message = error
            if result is not None:
                entry.run.summary.CopyFrom(run_summary(result.summary))
            self._publish_statuses()
        if log is not None:
            # The log is closed by now, but still hands events to its sinks (events.jsonl, the feed).
            log.emit(status_change=status)
        entry.feed.end()
        logger.info("run %s: %s%s", entry.run.run_id, run_pb2.RunStatus.Name(status), f" ({error})" if error else "")

    # Helpers (under the lock)

    def _publish_statuses(self) -> None:
        """esper_tolaria_runs: how many runs this server holds in each status."""
        counts = Counter(int(entry.run.status) for entry in self._runs.values())
        for status in _STATUSES:
            name = run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")
            metrics.TOLARIA_RUNS.labels(status=name).set(counts[int(status)])

    def _find(self, run_id: str) -> _Run:
        entry = self._runs.get(run_id)
        if entry is None:
            raise NotFound(f"run_id: no run {run_id!r}", reason="RUN_NOT_FOUND")
        return entry

    def _check_room(self) -> None:
        """Live runs are those training (at most `max_concurrent_runs`) and those waiting for a slot."""
        live = sum(1 for entry in self._runs.values() if entry.run.status in _LIVE)
        room = self.config.max_concurrent_runs + self.config.max_pending_runs
        if live >= room:
            raise ResourceExhausted(
                f"{live} runs are training or waiting for a slot (at most {self.config.max_concurrent_runs} train "
                f"and {self.config.max_pending_runs} wait); retry when one has finished",
                retry_after_seconds=30.0,
            )

    def _forget_expired(self) -> None:
        """Drop finished runs past their retention, then the oldest past the count (their folders stay)."""
        now = time.monotonic()
        finished = sorted(
            (entry for entry in self._runs.values() if entry.ended_at is not None), key=lambda entry: entry.number
        )
        excess = len(finished) - self.config.max_finished_runs
        for index, entry in enumerate(finished):
            assert entry.ended_at is not None
            if index < excess or now - entry.ended_at > self.config.retention_seconds:
                del self._runs[entry.run.run_id]

    def _unused_run_id(self) -> str:
        while (run_id := new_run_id()) in self._runs:
            pass
        return run_id

    def _check_folder_free(self, config: EsperConfig) -> None:
        folder = Path(str(config.run.out)).expanduser().resolve()
        for other in self._runs.values():
            if other.run.status in _LIVE and Path(other.run.out_dir).resolve() == folder:
                raise FailedPrecondition(
                    f"config.out_dir: run {other.run.run_id!r} is writing {folder} right now; pick another folder"
                )


def _import_torch_lazily_loaded_modules() -> None:
    """Import what torch otherwise imports on first use, before run threads exist.

    The first optimizer and the first torch.export.load import torch._dynamo; two
    threads doing that at once (a run's trainer and another's kernel prefetch) can
    fail with a circular-import error, as torch's lazy imports are not thread-safe.
    """
    import torch._dynamo
    import torch.export  # noqa: F401


def run_summary(summary: dict[str, Any]) -> run_pb2.RunSummary:
    """The RunSummary fields of a run's summary dict (summary.json holds the rest)."""
    fields = run_pb2.RunSummary.DESCRIPTOR.fields_by_name
    return run_pb2.RunSummary(**{key: value for key, value in summary.items() if key in fields})


def _new_run(run_id: str, config: EsperConfig, config_yaml: str) -> run_pb2.Run:
    effective = run_pb2.RunConfig(
        dataset=config.run.dataset,
        epochs=config.run.epochs,
        seed=config.run.seed,
        host_width=config.run.host_width or 0,
        static=config.run.static,
        out_dir=str(config.run.out),
        config_yaml=config_yaml,
    )
    run = run_pb2.Run(run_id=run_id, config=effective, status=run_pb2.RUN_STATUS_PENDING, out_dir=str(config.run.out))
    run.create_time.CopyFrom(timestamp_now())
    return run


def _copy(run: run_pb2.Run) -> run_pb2.Run:
    copied = run_pb2.Run()
    copied.CopyFrom(run)
    return copied
