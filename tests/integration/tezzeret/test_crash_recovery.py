"""A Tezzeret worker process killed mid-compile recovers after a restart with no duplicate.

Real processes: `esper serve urza` (SQLite file + folder store) and `esper serve
tezzeret` against it. The first worker is ended by its fault hook (os._exit(3), as
a crash: nothing flushed, nothing cleaned up); the restarted worker, with the same
worker id and folders, must finish the job: one kernel row, one stored object, no
leftover files, the attempts recorded.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from esper.clients import TezzeretClient, UrzaClient
from esper.clients.base import ClientConfig
from esper.leyline.v1 import kernel_pb2, tezzeret_pb2, urza_pb2
from esper.tezzeret.artifacts import load_kernel_module
from esper.tezzeret.config import AGGRESSIVE, STANDARD
from esper.tezzeret.wal import WriteAheadLog
from esper.tezzeret.worker import FAULT_EXIT_STATUS
from esper.urza.fetch import download_kernel_bytes
from tests.support.servers import TOOLS_DIR, EsperServeProcess
from tests.support.tezzeret import mlp_ir
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

JOB = kernel_pb2.CompileJobStatus
_WAIT_SECONDS = 180.0


def _worker_args(urza_address: str, tmp_path: Path, pipeline: str = "standard") -> list[str]:
    return [
        "--urza", urza_address,
        "--worker-id", "tezzeret-crash-drill",
        "--wal-dir", str(tmp_path / "wal"),
        "--work-dir", str(tmp_path / "work"),
        "--pipelines", pipeline,
        "--poll-interval", "0.1",
    ]  # fmt: skip


def _job(urza: UrzaClient, job_id: str) -> kernel_pb2.CompileJob:
    return urza.get_compile_job(urza_pb2.GetCompileJobRequest(job_id=job_id)).job


def _wait_for_job(urza: UrzaClient, job_id: str, status: int) -> kernel_pb2.CompileJob:
    return eventually(
        lambda: _job(urza, job_id),
        until=lambda job: job.status == status,
        timeout=_WAIT_SECONDS,
        what=f"job {job_id} in {JOB.Name(status)}",
    )


@pytest.mark.parametrize("stage", ["tmp_written", pytest.param("compiled", marks=pytest.mark.slow)])
def test_a_worker_killed_mid_compile_recovers_with_no_duplicate(
    esper_serve: Callable[..., EsperServeProcess], tmp_path: Path, stage: str
) -> None:
    urza_server = esper_serve("urza", "--data-dir", str(tmp_path / "urza"))
    urza = UrzaClient(ClientConfig(address=urza_server.address, deadline_seconds=30.0))
    request = urza_pb2.CreateBlueprintRequest(ir=mlp_ir(), pipelines=[STANDARD])
    blueprint_id = urza.create_blueprint(request).blueprint.blueprint_id
    job_id = f"job-{blueprint_id}-standard"
    args = _worker_args(urza_server.address, tmp_path)

    crashed = subprocess.run(
        [str(TOOLS_DIR / "esper"), "serve", "tezzeret", "--port", "0", *args, "--fault-exit-after", stage],
        capture_output=True,
        timeout=_WAIT_SECONDS,
        check=False,
    )
    assert crashed.returncode == FAULT_EXIT_STATUS, crashed.stderr.decode(errors="replace")
    left = sorted(path.name for path in (tmp_path / "work" / "artifacts").iterdir())
    assert len(left) == 1 and left[0].endswith(".tmp" if stage == "tmp_written" else ".pt2")
    assert _job(urza, job_id).status == JOB.COMPILE_JOB_STATUS_RUNNING

    restarted = esper_serve("tezzeret", *args)
    job = _wait_for_job(urza, job_id, JOB.COMPILE_JOB_STATUS_SUCCEEDED)
    with TezzeretClient(ClientConfig(address=restarted.address)) as tezzeret:
        status = tezzeret.get_worker_status(tezzeret_pb2.GetWorkerStatusRequest())
    assert restarted.stop() == 0, restarted.log()

    assert job.attempts == 2
    assert (status.jobs_recovered, status.jobs_succeeded, status.attempts_failed) == (1, 1, 0)
    kernels = urza.query_kernels(
        urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(blueprint_id=blueprint_id))
    ).result
    assert kernels.total_size == 1
    assert kernels.kernels[0].kernel_id == job.kernel_id
    stored_objects = [path for path in (tmp_path / "urza" / "artifacts").rglob("*") if path.is_file()]
    assert len(stored_objects) == 1
    assert list((tmp_path / "work" / "artifacts").iterdir()) == []
    assert WriteAheadLog(tmp_path / "wal" / "tezzeret.wal").replay() == {}
    data, kernel = download_kernel_bytes(urza, job.kernel_id)
    assert load_kernel_module(data, kernel.pipeline) is not None
    urza.close()


@pytest.mark.slow
def test_a_worker_sigkilled_during_an_inductor_compile_recovers_with_no_duplicate(
    esper_serve: Callable[..., EsperServeProcess], tmp_path: Path
) -> None:
    """SIGKILL, no fault hook: the AGGRESSIVE compile (seconds of Inductor work) is killed once the
    log shows the claim, and the restarted worker compiles the job again and stores it once."""
    urza_server = esper_serve("urza", "--data-dir", str(tmp_path / "urza"))
    urza = UrzaClient(ClientConfig(address=urza_server.address, deadline_seconds=30.0))
    request = urza_pb2.CreateBlueprintRequest(ir=mlp_ir(), pipelines=[AGGRESSIVE])
    blueprint_id = urza.create_blueprint(request).blueprint.blueprint_id
    job_id = f"job-{blueprint_id}-aggressive"
    args = _worker_args(urza_server.address, tmp_path, "aggressive")
    wal = tmp_path / "wal" / "tezzeret.wal"

    doomed = esper_serve("tezzeret", *args)
    eventually(
        lambda: '"claimed"' in (wal.read_text(encoding="utf-8") if wal.exists() else ""),
        timeout=_WAIT_SECONDS,
        what="a claimed job in the write-ahead log",
    )
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(30)
    assert '"compiled"' not in wal.read_text(encoding="utf-8"), "the compile finished before the kill"
    assert _job(urza, job_id).status == JOB.COMPILE_JOB_STATUS_RUNNING

    restarted = esper_serve("tezzeret", *args)
    job = _wait_for_job(urza, job_id, JOB.COMPILE_JOB_STATUS_SUCCEEDED)
    assert restarted.stop() == 0, restarted.log()

    assert job.attempts == 2
    kernels = urza.query_kernels(
        urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(blueprint_id=blueprint_id))
    ).result
    assert kernels.total_size == 1
    assert len([path for path in (tmp_path / "urza" / "artifacts").rglob("*") if path.is_file()]) == 1
    assert list((tmp_path / "work" / "artifacts").iterdir()) == []
    data, kernel = download_kernel_bytes(urza, job.kernel_id)
    assert kernel.pipeline == AGGRESSIVE
    assert load_kernel_module(data, AGGRESSIVE) is not None
    urza.close()
