"""Tezzeret's write-ahead log: what a worker had started, so a restart finishes it exactly once.

One JSON object per line, appended and fsync'ed before the worker acts on it:

- `claimed`  (job_id, lease_token, attempt, pipeline, blueprint_id): a job was leased.
- `compiled` (job_id, kernel_id, artifact_path, sha256, kernel): the artifact is
  complete on disk (written to a temporary file, fsync'ed, then renamed into place).
- `uploaded` (job_id, kernel_id): Urza stored it; the job is done.
- `failed`   (job_id, error, retryable): the attempt was reported as failed.
- `abandoned` (job_id, reason): the worker gave the job up (lease lost, or Urza
  no longer hands it back); its local artifact was deleted.

Replaying the log gives the jobs that were claimed but never uploaded, failed or
abandoned. A crash can only tear the last line (every earlier one was fsync'ed
before the next was written), so a torn last line is ignored; damage anywhere
else is DataLoss. Compaction rewrites the log with only the unfinished jobs, via
a temporary file and an atomic rename.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from esper.errors import DataLoss, FailedPrecondition
from esper.fsutil import atomic_write
from esper.leyline.v1 import kernel_pb2

logger = logging.getLogger(__name__)

CLAIMED = "claimed"
COMPILED = "compiled"
UPLOADED = "uploaded"
FAILED = "failed"
ABANDONED = "abandoned"
_FINISHED = frozenset({UPLOADED, FAILED, ABANDONED})
_STAGES = frozenset({CLAIMED, COMPILED, *_FINISHED})


@dataclass(frozen=True)
class PendingJob:
    """A job the log shows as claimed and not finished; `kernel_id` is set once it compiled."""

    job_id: str
    lease_token: str
    attempt: int
    pipeline: int
    blueprint_id: str
    kernel_id: str = ""
    artifact_path: str = ""
    sha256: str = ""
    kernel: kernel_pb2.KernelArtifact | None = None

    @property
    def compiled(self) -> bool:
        return bool(self.kernel_id)


class WriteAheadLog:
    """An append-only, fsync'ed JSON-lines log at `path`, owned by one worker process at a time.

    Ownership is an exclusive lock on `<path>.lock`, held until `close` (or until the
    process dies: the OS releases it), so two workers pointed at the same folder fail
    at start instead of interleaving records and deleting each other's artifacts.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._appended = 0
        self._lock_fd: int | None = _lock(path.with_name(f"{path.name}.lock"))

    def close(self) -> None:
        """Release the log for another worker; the object must not be used afterwards."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def appended_since_compaction(self) -> int:
        return self._appended

    def claimed(self, job_id: str, *, lease_token: str, attempt: int, pipeline: int, blueprint_id: str) -> None:
        self._append(
            CLAIMED,
            job_id,
            lease_token=lease_token,
            attempt=attempt,
            pipeline=int(pipeline),
            blueprint_id=blueprint_id,
        )

    def compiled(self, job_id: str, *, kernel: kernel_pb2.KernelArtifact, artifact_path: Path, sha256: str) -> None:
        self._append(
            COMPILED,
            job_id,
            kernel_id=kernel.kernel_id,
            artifact_path=str(artifact_path),
            sha256=sha256,
            kernel=json_format.MessageToDict(kernel),
        )

    def uploaded(self, job_id: str, *, kernel_id: str) -> None:
        self._append(UPLOADED, job_id, kernel_id=kernel_id)

    def failed(self, job_id: str, *, error: str, retryable: bool) -> None:
        self._append(FAILED, job_id, error=error, retryable=retryable)

    def abandoned(self, job_id: str, *, reason: str) -> None:
        self._append(ABANDONED, job_id, reason=reason)

    def replay(self) -> dict[str, PendingJob]:
        """The unfinished jobs, by job id, in the order they were claimed."""
        pending: dict[str, PendingJob] = {}
        for number, record in enumerate(self._records(), start=1):
            try:
                _apply(pending, record)
            except (KeyError, ValueError, TypeError, json_format.ParseError) as exc:
                raise DataLoss(f"WAL {self.path} record {number} is incomplete: {exc!r}", reason="INTERNAL") from None
        return pending

    def compact(self, pending: dict[str, PendingJob]) -> None:
        """Rewrite the log so it holds exactly the records that describe `pending`."""
        records = [record for job in pending.values() for record in _records_of(job)]
        lines = [json.dumps(record, sort_keys=True) for record in records]
        atomic_write(self.path, "".join(f"{line}\n" for line in lines).encode("utf-8"), sync_directory=True)
        self._appended = 0
        logger.debug("WAL compacted to %d records (%d unfinished jobs)", len(lines), len(pending))

    def _append(self, stage: str, job_id: str, **fields: Any) -> None:
        line = json.dumps({"stage": stage, "job_id": job_id, **fields}, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{line}\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._appended += 1

    def _records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").split("\n")
        # A complete log ends with a newline; whatever follows the last one is a torn write.
        torn, lines = lines[-1], lines[:-1]
        if torn:
            logger.warning("WAL %s: ignoring a torn last record (%d bytes)", self.path, len(torn))
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if record.get("stage") not in _STAGES or not isinstance(record.get("job_id"), str):
                    raise ValueError("not a WAL record")
            except (ValueError, AttributeError) as exc:
                raise DataLoss(f"WAL {self.path} line {number} is corrupt: {exc}", reason="INTERNAL") from None
            records.append(record)
        return records


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FailedPrecondition(
            f"write-ahead log {path.with_suffix('')} is in use by another worker; give each worker its "
            "own --wal-dir and --work-dir"
        ) from None
    return fd


def _apply(pending: dict[str, PendingJob], record: dict[str, Any]) -> None:
    stage, job_id = record["stage"], record["job_id"]
    if stage in _FINISHED:
        pending.pop(job_id, None)
    elif stage == CLAIMED:
        # A re-claim after a restart keeps what was already compiled.
        previous = pending.pop(job_id, None) or PendingJob(job_id, "", 0, 0, "")
        pending[job_id] = replace(
            previous,
            lease_token=str(record["lease_token"]),
            attempt=int(record["attempt"]),
            pipeline=int(record["pipeline"]),
            blueprint_id=str(record["blueprint_id"]),
        )
    elif stage == COMPILED and job_id in pending:
        kernel = json_format.ParseDict(record["kernel"], kernel_pb2.KernelArtifact())
        pending[job_id] = replace(
            pending[job_id],
            kernel_id=str(record["kernel_id"]),
            artifact_path=str(record["artifact_path"]),
            sha256=str(record["sha256"]),
            kernel=kernel,
        )


def _records_of(job: PendingJob) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {
            "stage": CLAIMED,
            "job_id": job.job_id,
            "lease_token": job.lease_token,
            "attempt": job.attempt,
            "pipeline": job.pipeline,
            "blueprint_id": job.blueprint_id,
        }
    ]
    if job.compiled and job.kernel is not None:
        records.append(
            {
                "stage": COMPILED,
                "job_id": job.job_id,
                "kernel_id": job.kernel_id,
                "artifact_path": job.artifact_path,
                "sha256": job.sha256,
                "kernel": json_format.MessageToDict(job.kernel),
            }
        )
    return records
