"""Write-ahead log replay and compaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.errors import DataLoss
from esper.leyline.v1 import kernel_pb2
from esper.tezzeret.config import FAST, STANDARD
from esper.tezzeret.wal import WriteAheadLog


def _kernel(kernel_id: str = "0123456789ab-cpu_test-fast-89abcdef") -> kernel_pb2.KernelArtifact:
    return kernel_pb2.KernelArtifact(kernel_id=kernel_id, pipeline=FAST, parameter_count=42)


@pytest.fixture
def wal(tmp_path: Path) -> WriteAheadLog:
    return WriteAheadLog(tmp_path / "wal" / "tezzeret.wal")


def test_an_empty_log_has_nothing_pending(wal: WriteAheadLog) -> None:
    assert wal.replay() == {}


def test_claimed_and_compiled_jobs_are_pending_until_finished(wal: WriteAheadLog, tmp_path: Path) -> None:
    for job in ("job-a", "job-b", "job-c", "job-d"):
        wal.claimed(job, lease_token=f"t-{job}", attempt=1, pipeline=FAST, blueprint_id="bp-1")
    wal.compiled("job-b", kernel=_kernel(), artifact_path=tmp_path / "k.pt2", sha256="ab" * 32)
    wal.uploaded("job-c", kernel_id="k")
    wal.failed("job-d", error="numerics", retryable=True)

    pending = wal.replay()

    assert list(pending) == ["job-a", "job-b"]
    assert not pending["job-a"].compiled
    job_b = pending["job-b"]
    assert job_b.compiled and job_b.kernel == _kernel()
    assert job_b.artifact_path == str(tmp_path / "k.pt2")
    assert (job_b.sha256, job_b.lease_token) == ("ab" * 32, "t-job-b")


def test_a_reclaim_keeps_the_compiled_artifact_and_takes_the_new_lease(wal: WriteAheadLog) -> None:
    wal.claimed("job-a", lease_token="first", attempt=1, pipeline=STANDARD, blueprint_id="bp-1")
    wal.compiled("job-a", kernel=_kernel(), artifact_path=Path("/x/k.pt2"), sha256="cd" * 32)
    wal.claimed("job-a", lease_token="second", attempt=2, pipeline=STANDARD, blueprint_id="bp-1")

    job = wal.replay()["job-a"]

    assert (job.lease_token, job.attempt, job.pipeline) == ("second", 2, STANDARD)
    assert job.compiled and job.sha256 == "cd" * 32


def test_abandoned_jobs_are_not_pending(wal: WriteAheadLog) -> None:
    wal.claimed("job-a", lease_token="t", attempt=1, pipeline=FAST, blueprint_id="bp-1")
    wal.abandoned("job-a", reason="lease lost")
    assert wal.replay() == {}


def test_a_torn_last_record_is_ignored(wal: WriteAheadLog) -> None:
    wal.claimed("job-a", lease_token="t", attempt=1, pipeline=FAST, blueprint_id="bp-1")
    with open(wal.path, "a", encoding="utf-8") as handle:
        handle.write('{"stage": "uploaded", "job_id": "job-a", "kern')

    assert list(wal.replay()) == ["job-a"]


def test_a_damaged_record_before_the_end_is_data_loss(wal: WriteAheadLog) -> None:
    wal.claimed("job-a", lease_token="t", attempt=1, pipeline=FAST, blueprint_id="bp-1")
    with open(wal.path, "a", encoding="utf-8") as handle:
        handle.write("garbage\n")
    wal.uploaded("job-a", kernel_id="k")

    with pytest.raises(DataLoss, match="line 2 is corrupt"):
        wal.replay()


def test_a_record_missing_fields_is_data_loss(wal: WriteAheadLog) -> None:
    wal.path.write_text('{"stage": "claimed", "job_id": "job-a"}\n', encoding="utf-8")
    with pytest.raises(DataLoss, match="incomplete"):
        wal.replay()


def test_compaction_keeps_exactly_the_pending_jobs(wal: WriteAheadLog) -> None:
    for index in range(50):
        wal.claimed(f"job-{index}", lease_token="t", attempt=1, pipeline=FAST, blueprint_id="bp-1")
        if index != 7:
            wal.uploaded(f"job-{index}", kernel_id="k")
    wal.compiled("job-7", kernel=_kernel(), artifact_path=Path("/x/k.pt2"), sha256="ef" * 32)
    before = wal.replay()

    wal.compact(before)

    assert wal.replay() == before
    assert len(wal.path.read_text(encoding="utf-8").splitlines()) == 2
    assert wal.appended_since_compaction == 0
    assert not list(wal.path.parent.glob(".*.tmp"))
