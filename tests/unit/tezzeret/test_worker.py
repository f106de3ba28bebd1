"""The compile worker against a real UrzaHub: jobs succeed, failures end FAILED with the
compiler's message after bounded retries, and a crash at any stage recovers with no duplicate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from esper.errors import FailedPrecondition, InvalidArgument
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, tezzeret_pb2
from esper.tezzeret.artifacts import load_kernel_module
from esper.tezzeret.config import FAST, FAULT_STAGES, STANDARD
from esper.tezzeret.pipelines import CompiledKernel, CompileError
from esper.tezzeret.service import TezzeretService
from esper.tezzeret.worker import FAULT_EXIT_STATUS, TezzeretWorker
from esper.urza.fetch import download_kernel_bytes
from esper.urza.hub import UrzaHub
from tests.support.signing import TEST_SIGNER, TEST_TRUST
from tests.support.tezzeret import (
    ManualClock,
    RecordingUrza,
    StubCompiler,
    blueprint,
    files_in,
    mlp_ir,
    stored_objects,
    submit,
)
from tests.unit.tezzeret.conftest import ConfigFactory

JOB = kernel_pb2.CompileJobStatus


class SimulatedCrash(BaseException):
    """Raised where the fault hook would end the process."""


def _crash(status: int) -> None:
    raise SimulatedCrash(status)


def _drain(worker: TezzeretWorker, limit: int = 20) -> int:
    """run_once until the queue is empty; how many jobs were processed."""
    for processed in range(limit):
        if not worker.run_once():
            return processed
    raise AssertionError("the queue never drained")


def test_worker_compiles_every_queued_job_into_loadable_kernels(hub: UrzaHub, make_config: ConfigFactory) -> None:
    ir = mlp_ir()
    blueprint_id = submit(hub, ir, FAST, STANDARD)
    worker = TezzeretWorker(hub, make_config())

    assert _drain(worker) == 2

    stored = blueprint(hub, blueprint_id)
    assert stored.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_COMPILED
    assert sorted(job.status for job in stored.compile_jobs) == [JOB.COMPILE_JOB_STATUS_SUCCEEDED] * 2
    assert {kernel.pipeline for kernel in stored.kernels} == {FAST, STANDARD}
    x = torch.randn(5, 16)
    for kernel in stored.kernels:
        data, _ = download_kernel_bytes(hub, kernel.kernel_id)
        assert load_kernel_module(data, kernel.pipeline)(x).shape == (5, 16)
        assert kernel.toolchain_hash == worker.toolchain
    assert files_in(worker.config.artifacts_dir) == []
    assert worker.wal.replay() == {}
    status = worker.state.status()
    assert (status.jobs_succeeded, status.attempts_failed, status.jobs_recovered) == (2, 0, 0)
    assert not status.HasField("current_job")


def test_a_failing_compile_is_retried_then_the_blueprint_fails_with_the_compilers_message(
    hub: UrzaHub, make_config: ConfigFactory
) -> None:
    blueprint_id = submit(hub, mlp_ir(), STANDARD)
    worker = TezzeretWorker(hub, make_config(numerics_tolerance=-1.0))

    assert _drain(worker) == 3

    stored = blueprint(hub, blueprint_id)
    (job,) = stored.compile_jobs
    assert (job.status, job.attempts) == (JOB.COMPILE_JOB_STATUS_FAILED, 3)
    assert "numerics check" in job.last_error
    assert stored.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_FAILED
    assert "numerics check" in stored.blueprint.failure_reason
    assert list(stored.kernels) == []
    assert worker.state.status().attempts_failed == 3
    assert worker.wal.replay() == {}


def test_a_non_retryable_failure_fails_the_job_at_once(hub: UrzaHub, make_config: ConfigFactory) -> None:
    def invalid_ir_compiler(*args: object, **kwargs: object) -> CompiledKernel:
        raise CompileError("invalid IR: ir.nodes[3]: no such op", retryable=False)

    blueprint_id = submit(hub, mlp_ir(), FAST)
    worker = TezzeretWorker(hub, make_config(), compiler=invalid_ir_compiler)

    assert _drain(worker) == 1

    (job,) = blueprint(hub, blueprint_id).compile_jobs
    assert (job.status, job.attempts) == (JOB.COMPILE_JOB_STATUS_FAILED, 1)
    assert job.last_error == "invalid IR: ir.nodes[3]: no such op"


@pytest.mark.parametrize("stage", FAULT_STAGES)
def test_a_worker_killed_at_any_stage_recovers_with_no_duplicate(
    hub: UrzaHub, make_config: ConfigFactory, tmp_path: Path, stage: str
) -> None:
    blueprint_id = submit(hub, mlp_ir(), FAST)
    crashing = TezzeretWorker(hub, make_config(fault_exit_after=stage), exit_process=_crash)
    with pytest.raises(SimulatedCrash) as crash:
        crashing.run_once()
    assert crash.value.args == (FAULT_EXIT_STATUS,)
    left_behind = files_in(crashing.config.artifacts_dir)
    crashing.close()  # what the OS does for a dead process

    compiler = StubCompiler(real=True)
    restarted = TezzeretWorker(hub, make_config(), compiler=compiler)
    # Only a whole artifact the log vouches for survives the restart; a temporary file never does.
    assert files_in(restarted.config.artifacts_dir) == [n for n in left_behind if not n.startswith(".")]
    _drain(restarted)

    stored = blueprint(hub, blueprint_id)
    (job,) = stored.compile_jobs
    assert job.status == JOB.COMPILE_JOB_STATUS_SUCCEEDED
    assert len(stored.kernels) == 1
    assert len(stored_objects(tmp_path / "urza")) == 1
    assert files_in(restarted.config.artifacts_dir) == []
    assert restarted.wal.replay() == {}
    # Killed after the upload: Urza had finished the job. Killed after the compile: the
    # artifact on disk was uploaded without compiling again. Otherwise: compiled again.
    expected = {"completed": (1, 0, 0), "compiled": (2, 1, 0), "tmp_written": (2, 1, 1), "claimed": (2, 1, 1)}
    assert (job.attempts, restarted.state.status().jobs_recovered, len(compiler.calls)) == expected[stage]


def test_files_the_log_does_not_vouch_for_are_removed_at_start(make_config: ConfigFactory, hub: UrzaHub) -> None:
    config = make_config()
    config.artifacts_dir.mkdir(parents=True)
    (config.artifacts_dir / ".0123-fast.pt2.tmp").write_bytes(b"half")
    (config.artifacts_dir / "0123-fast.pt2").write_bytes(b"orphan")

    TezzeretWorker(hub, config)

    assert files_in(config.artifacts_dir) == []


def test_two_workers_cannot_share_a_write_ahead_log(hub: UrzaHub, make_config: ConfigFactory) -> None:
    first = TezzeretWorker(hub, make_config(worker_id="first"))

    with pytest.raises(FailedPrecondition, match="in use by another worker"):
        TezzeretWorker(hub, make_config(worker_id="second"))
    first.close()
    TezzeretWorker(hub, make_config(worker_id="second")).close()


def test_a_lease_lost_during_the_compile_abandons_the_attempt(
    hub: UrzaHub, make_config: ConfigFactory, clock: ManualClock
) -> None:
    blueprint_id = submit(hub, mlp_ir(), FAST)
    config = make_config(lease_seconds=10)
    slow = StubCompiler(before=lambda: clock.advance(60))
    worker = TezzeretWorker(hub, config, compiler=slow)

    assert worker.run_once()

    (job,) = blueprint(hub, blueprint_id).compile_jobs
    assert job.status == JOB.COMPILE_JOB_STATUS_RUNNING
    assert files_in(config.artifacts_dir) == []
    assert worker.wal.replay() == {}
    assert "lease lost" in worker.state.jobs_newest_first()[0].last_error
    worker.close()

    worker_again = TezzeretWorker(hub, config, compiler=StubCompiler())
    _drain(worker_again)
    (job,) = blueprint(hub, blueprint_id).compile_jobs
    assert (job.status, job.attempts) == (JOB.COMPILE_JOB_STATUS_SUCCEEDED, 2)


def test_a_long_queue_switches_to_fast_jobs_first(hub: UrzaHub, make_config: ConfigFactory) -> None:
    for seed in range(3):
        submit(hub, mlp_ir(init_seed=seed), FAST, STANDARD)
    urza = RecordingUrza(hub)
    worker = TezzeretWorker(urza, make_config(conservative_queue_threshold=2), compiler=StubCompiler())
    taken: list[int] = []
    modes: list[bool] = []

    while worker.run_once():
        taken.append(worker.state.jobs_newest_first()[0].pipeline)
        modes.append(worker.state.status().conservative_mode)

    assert modes[:4] == [True, True, True, False]
    assert taken == [FAST, FAST, FAST, STANDARD, STANDARD, STANDARD]
    # In conservative mode the worker asks for FAST only, and falls back to any pipeline when
    # there is no FAST job left rather than leave the queue as it is.
    assert [list(claim.pipelines) for claim in urza.claims[1:4]] == [[FAST], [FAST], [FAST]]
    assert list(urza.claims[4].pipelines) == list(worker.config.pipelines)


def test_run_forever_rides_out_an_unavailable_urza_and_stops_when_asked(
    hub: UrzaHub, make_config: ConfigFactory
) -> None:
    blueprint_id = submit(hub, mlp_ir(), FAST)
    worker = TezzeretWorker(RecordingUrza(hub, unavailable_claims=2), make_config(), compiler=StubCompiler())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if worker.state.status().jobs_succeeded == 1:
                break
            stop.wait(0.02)
    finally:
        stop.set()
        thread.join(10)

    assert not thread.is_alive()
    (job,) = blueprint(hub, blueprint_id).compile_jobs
    assert job.status == JOB.COMPILE_JOB_STATUS_SUCCEEDED


def test_status_and_job_listing_describe_the_work_without_lease_tokens(
    hub: UrzaHub, make_config: ConfigFactory
) -> None:
    for seed in range(3):
        submit(hub, mlp_ir(init_seed=seed), FAST)
    worker = TezzeretWorker(hub, make_config(), compiler=StubCompiler())
    _drain(worker)
    service = TezzeretService(worker.state)

    status = service.get_worker_status(tezzeret_pb2.GetWorkerStatusRequest())
    first = service.list_worker_jobs(tezzeret_pb2.ListWorkerJobsRequest(page_size=2))
    rest = service.list_worker_jobs(tezzeret_pb2.ListWorkerJobsRequest(page_size=2, page_token=first.next_page_token))

    assert (status.worker_id, status.jobs_succeeded, status.toolchain_hash) == (
        "tezzeret-test",
        3,
        worker.toolchain,
    )
    assert status.start_time.seconds > 0
    jobs = [*first.jobs, *rest.jobs]
    assert rest.next_page_token == ""
    assert len({job.job_id for job in jobs}) == 3
    assert all(job.status == JOB.COMPILE_JOB_STATUS_SUCCEEDED and job.kernel_id for job in jobs)
    assert all(job.lease_token == "" and not job.HasField("ir") for job in jobs)
    with pytest.raises(InvalidArgument) as bad_token:
        service.list_worker_jobs(tezzeret_pb2.ListWorkerJobsRequest(page_token="nonsense"))
    assert bad_token.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument) as bad_size:
        service.list_worker_jobs(tezzeret_pb2.ListWorkerJobsRequest(page_size=-1))
    assert bad_size.value.violations[0].field == "page_size"


def test_a_kernel_urza_refuses_fails_the_job_with_urzas_reason(hub: UrzaHub, make_config: ConfigFactory) -> None:
    def wrong_ir_hash(ir: object, pipeline: int, config: object, **kwargs: str) -> CompiledKernel:
        kernel = kernel_pb2.KernelArtifact(
            kernel_id=f"{'0' * 12}-cpu_test-fast-{kwargs['toolchain'][:8]}", hardware_target="cpu_test"
        )
        return CompiledKernel(b"bytes", kernel, 0.001, ())

    blueprint_id = submit(hub, mlp_ir(), FAST)
    worker = TezzeretWorker(hub, make_config(), compiler=wrong_ir_hash)

    assert _drain(worker) == 1

    (job,) = blueprint(hub, blueprint_id).compile_jobs
    assert (job.status, job.attempts) == (JOB.COMPILE_JOB_STATUS_FAILED, 1)
    assert job.last_error.startswith("Urza refused the kernel: kernel.kernel_id: IR hash part")
    assert files_in(worker.config.artifacts_dir) == []


def test_a_signing_worker_stores_kernels_whose_signature_verifies(hub: UrzaHub, make_config: ConfigFactory) -> None:
    blueprint_id = submit(hub, mlp_ir(width=8), FAST)
    worker = TezzeretWorker(hub, make_config(), compiler=StubCompiler(), signer=TEST_SIGNER)
    assert _drain(worker) == 1
    (kernel,) = blueprint(hub, blueprint_id).kernels
    assert kernel.signature.key_id == TEST_SIGNER.key_id
    assert TEST_TRUST.verify(kernel, kernel.sha256) == TEST_SIGNER.key_id


def test_the_worker_compiles_its_run_s_blueprints_first(hub: UrzaHub, make_config: ConfigFactory) -> None:
    other = submit(hub, mlp_ir(init_seed=1), FAST, STANDARD)
    mine = submit(hub, mlp_ir(init_seed=2), FAST, STANDARD)
    compiler = StubCompiler()
    worker = TezzeretWorker(hub, make_config(), compiler=compiler, preferred=lambda: [mine])
    _drain(worker)
    assert compiler.calls == [(mine, FAST), (mine, STANDARD), (other, FAST), (other, STANDARD)]


def test_an_interrupted_compile_is_queued_again_without_using_an_attempt(
    hub: UrzaHub, make_config: ConfigFactory
) -> None:
    from esper.tezzeret.pipelines import CompileInterrupted

    def stopping(*args: object, **kwargs: object) -> CompiledKernel:
        raise CompileInterrupted("compile child stopped: stopped with its fork server")

    blueprint_id = submit(hub, mlp_ir(), FAST)
    worker = TezzeretWorker(hub, make_config(), compiler=stopping)
    for _ in range(4):  # more than the hub's three attempts
        assert worker.run_once()
    job = blueprint(hub, blueprint_id).compile_jobs[0]
    assert job.status == JOB.COMPILE_JOB_STATUS_QUEUED and job.attempts == 0
    assert worker.pending_jobs == {}
