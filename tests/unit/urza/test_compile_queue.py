"""The compile job queue: claim, complete, fail, leases and concurrent workers."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from esper.errors import AlreadyExists, EsperError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.urza.hub import UrzaHub
from esper.urza.store import FolderObjectStore
from tests.support.signing import OTHER_SIGNER, TEST_TRUST, signed
from tests.support.urza import (
    FakeClock,
    claim,
    complete,
    fail,
    kernel_id_for,
    make_hub,
    program_archive,
    sample_ir,
    submit,
)

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
STANDARD = kernel_pb2.COMPILATION_PIPELINE_STANDARD
JOB = kernel_pb2.CompileJobStatus
BP = blueprint_pb2.BlueprintStatus


def _blueprint(hub: UrzaHub, blueprint_id: str) -> urza_pb2.GetBlueprintResponse:
    return hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id))


def _job(hub: UrzaHub, job_id: str) -> kernel_pb2.CompileJob:
    return hub.get_compile_job(urza_pb2.GetCompileJobRequest(job_id=job_id)).job


def test_claim_leases_the_oldest_job_with_its_ir(hub: UrzaHub, clock: FakeClock) -> None:
    first = submit(hub, sample_ir(seed=1))
    submit(hub, sample_ir(seed=2))
    response = hub.claim_compile_job(urza_pb2.ClaimCompileJobRequest(worker_id="w1", lease_seconds=60))
    job = response.job
    assert job.job_id == f"job-{first.blueprint_id}-fast"
    assert job.status == JOB.COMPILE_JOB_STATUS_RUNNING
    assert (job.attempts, job.worker_id) == (1, "w1")
    assert len(job.lease_token) == 32
    assert job.lease_expire_time.seconds == (clock.now_us // 1_000_000) + 60
    assert job.ir == first.ir
    assert response.queue_depth == 3
    assert _blueprint(hub, first.blueprint_id).blueprint.status == BP.BLUEPRINT_STATUS_COMPILING
    # The lease token is only handed to the claimer.
    assert _job(hub, job.job_id).lease_token == ""


def test_claim_respects_the_pipelines_a_worker_runs(hub: UrzaHub) -> None:
    blueprint = submit(hub)
    job = claim(hub, "w1", STANDARD)
    assert job is not None and job.job_id == f"job-{blueprint.blueprint_id}-standard"
    assert claim(hub, "w2", STANDARD) is None


def test_preferred_blueprints_come_first_fast_before_standard_in_the_order_given(hub: UrzaHub) -> None:
    old = submit(hub, sample_ir(seed=1))
    second = submit(hub, sample_ir(seed=2))
    first = submit(hub, sample_ir(seed=3))
    preferred = [first.blueprint_id, second.blueprint_id]
    claimed = []
    for _ in range(5):
        response = hub.claim_compile_job(
            urza_pb2.ClaimCompileJobRequest(worker_id="w1", preferred_blueprint_ids=preferred)
        )
        claimed.append((response.job.blueprint_id, response.job.pipeline))
        complete(hub, response.job)
    assert claimed == [
        (first.blueprint_id, FAST),
        (second.blueprint_id, FAST),
        (first.blueprint_id, STANDARD),
        (second.blueprint_id, STANDARD),
        (old.blueprint_id, FAST),  # then the oldest job of anyone else's
    ]


def test_too_many_or_malformed_preferred_blueprints_are_refused_naming_the_field(hub: UrzaHub) -> None:
    for ids, field in ((["bp-x"] * 1001, "preferred_blueprint_ids"), (["bad\nid"], "preferred_blueprint_ids[0]")):
        with pytest.raises(InvalidArgument) as caught:
            hub.claim_compile_job(urza_pb2.ClaimCompileJobRequest(worker_id="w1", preferred_blueprint_ids=ids))
        assert field in str(caught.value)


def test_an_interrupted_attempt_is_queued_again_without_counting(hub: UrzaHub) -> None:
    submit(hub, pipelines=[FAST])
    for _ in range(5):  # more than max_attempts (3): none of them counts
        job = claim(hub)
        assert job is not None and job.attempts == 1
        request = urza_pb2.FailCompileJobRequest(
            job_id=job.job_id, lease_token=job.lease_token, error_message="worker stopping", interrupted=True
        )
        after = hub.fail_compile_job(request).job
        assert after.status == JOB.COMPILE_JOB_STATUS_QUEUED and after.attempts == 0


def test_claim_on_an_empty_queue_returns_no_job(hub: UrzaHub) -> None:
    response = hub.claim_compile_job(urza_pb2.ClaimCompileJobRequest(worker_id="w1"))
    assert not response.HasField("job")
    assert response.queue_depth == 0


def test_complete_stores_the_kernel_and_the_blueprint_becomes_compiled(hub: UrzaHub) -> None:
    blueprint = submit(hub)
    fast, standard = claim(hub, "w1"), claim(hub, "w2")
    assert fast is not None and standard is not None
    artifact = b"\x00pt2" * 1000
    kernel = complete(hub, fast, artifact, parameter_count=544, toolchain_hash="0123abcd99")
    assert kernel.kernel_id == kernel_id_for(fast)
    assert kernel.sha256 == hashlib.sha256(program_archive(artifact)).hexdigest()
    assert kernel.size_bytes == len(program_archive(artifact))
    assert kernel.status == kernel_pb2.KERNEL_STATUS_COMPILED
    assert (kernel.blueprint_id, kernel.pipeline) == (blueprint.blueprint_id, FAST)
    assert (kernel.input_kind, list(kernel.input_shape.dims)) == (blueprint_pb2.INPUT_KIND_FEATURES, [16])
    assert _job(hub, fast.job_id).status == JOB.COMPILE_JOB_STATUS_SUCCEEDED
    assert _job(hub, fast.job_id).kernel_id == kernel.kernel_id
    assert _blueprint(hub, blueprint.blueprint_id).blueprint.status == BP.BLUEPRINT_STATUS_COMPILING
    complete(hub, standard, b"other bytes")
    assert _blueprint(hub, blueprint.blueprint_id).blueprint.status == BP.BLUEPRINT_STATUS_COMPILED


def test_retryable_failures_requeue_until_max_attempts_then_fail(hub: UrzaHub) -> None:
    blueprint = submit(hub, pipelines=[FAST])
    for attempt in (1, 2):
        job = claim(hub)
        assert job is not None and job.attempts == attempt
        after = fail(hub, job, f"compiler crashed on attempt {attempt}")
        assert after.status == JOB.COMPILE_JOB_STATUS_QUEUED
        assert after.last_error == f"compiler crashed on attempt {attempt}"
        assert _blueprint(hub, blueprint.blueprint_id).blueprint.status == BP.BLUEPRINT_STATUS_COMPILING
    job = claim(hub)
    assert job is not None and job.attempts == 3
    after = fail(hub, job, "out of memory in export")
    assert after.status == JOB.COMPILE_JOB_STATUS_FAILED
    assert claim(hub) is None
    failed = _blueprint(hub, blueprint.blueprint_id).blueprint
    assert failed.status == BP.BLUEPRINT_STATUS_FAILED
    assert "out of memory in export" in failed.failure_reason


def test_a_non_retryable_failure_fails_the_job_at_once(hub: UrzaHub) -> None:
    blueprint = submit(hub)
    fast = claim(hub)
    assert fast is not None
    assert fail(hub, fast, "op not exportable", retryable=False).status == JOB.COMPILE_JOB_STATUS_FAILED
    standard = claim(hub)
    assert standard is not None and standard.pipeline == STANDARD
    complete(hub, standard)
    # One pipeline produced a kernel: the blueprint is usable.
    assert _blueprint(hub, blueprint.blueprint_id).blueprint.status == BP.BLUEPRINT_STATUS_COMPILED


def test_a_repeated_failure_report_is_recorded_once(hub: UrzaHub) -> None:
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    fail(hub, job, "boom")
    again = fail(hub, job, "boom")
    assert (again.status, again.attempts) == (JOB.COMPILE_JOB_STATUS_QUEUED, 1)


def test_an_expired_lease_is_lost_and_the_job_goes_to_another_worker(hub: UrzaHub, clock: FakeClock) -> None:
    submit(hub, pipelines=[FAST])
    first = claim(hub, "w1", lease=10)
    assert first is not None
    clock.advance(11)
    with pytest.raises(FailedPrecondition) as caught:
        complete(hub, first)
    assert caught.value.reason == "LEASE_LOST"
    second = claim(hub, "w2")
    assert second is not None
    assert (second.job_id, second.attempts, second.worker_id) == (first.job_id, 2, "w2")
    with pytest.raises(FailedPrecondition) as caught:
        fail(hub, first)
    assert caught.value.reason == "LEASE_LOST"
    complete(hub, second)
    assert _job(hub, first.job_id).status == JOB.COMPILE_JOB_STATUS_SUCCEEDED


def test_a_wrong_lease_token_is_refused(hub: UrzaHub) -> None:
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    job.lease_token = "f" * 32
    with pytest.raises(FailedPrecondition) as caught:
        complete(hub, job)
    assert caught.value.reason == "LEASE_LOST"
    assert _job(hub, job.job_id).status == JOB.COMPILE_JOB_STATUS_RUNNING


def test_a_restarted_worker_resumes_its_own_job(hub: UrzaHub) -> None:
    submit(hub)
    before = claim(hub, "tezzeret-1")
    assert before is not None
    after = claim(hub, "tezzeret-1")
    assert after is not None
    assert after.job_id == before.job_id
    assert after.attempts == before.attempts + 1
    assert after.lease_token != before.lease_token
    with pytest.raises(FailedPrecondition):
        complete(hub, before)
    complete(hub, after)


def test_a_job_whose_last_attempt_was_abandoned_fails(database_url: str, tmp_path: Path, clock: FakeClock) -> None:
    hub = make_hub(database_url, tmp_path / "store", clock, compile_max_attempts=1)
    blueprint = submit(hub, pipelines=[FAST])
    assert claim(hub, "w1", lease=5) is not None
    clock.advance(6)
    assert claim(hub, "w2") is None
    job = _job(hub, f"job-{blueprint.blueprint_id}-fast")
    assert job.status == JOB.COMPILE_JOB_STATUS_FAILED
    assert "abandoned" in job.last_error
    assert _blueprint(hub, blueprint.blueprint_id).blueprint.status == BP.BLUEPRINT_STATUS_FAILED
    hub.close()


def test_concurrent_claims_never_hand_out_a_job_twice(database_url: str, tmp_path: Path) -> None:
    # Separate hubs (own engines) play separate worker processes sharing one SQLite file.
    hubs = [make_hub(database_url, tmp_path / "store") for _ in range(4)]
    for seed in range(12):
        submit(hubs[0], sample_ir(seed=seed))
    start = threading.Barrier(8)

    def worker(index: int) -> list[str]:
        hub = hubs[index % len(hubs)]
        start.wait()
        taken = []
        while (job := claim(hub, f"worker-{index}")) is not None:
            taken.append(job.job_id)
            complete(hub, job, job.job_id.encode())
        return taken

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    claimed = [job_id for taken in results for job_id in taken]
    assert len(claimed) == 24
    assert len(set(claimed)) == 24
    for hub in hubs:
        hub.close()


def test_completing_again_with_the_same_bytes_is_idempotent(hub: UrzaHub) -> None:
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    first = complete(hub, job, b"the artifact")
    again = complete(hub, job, b"the artifact")
    assert again == first
    total = hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.total_size
    assert total == 1


def test_an_artifact_id_is_written_once(hub: UrzaHub) -> None:
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    original = complete(hub, job, b"the artifact")
    with pytest.raises(AlreadyExists) as caught:
        complete(hub, job, b"different bytes, same id")
    assert caught.value.reason == "ALREADY_EXISTS"
    chunks = hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=original.kernel_id))
    assert b"".join(chunk.chunk_data for chunk in chunks) == program_archive(b"the artifact")


@pytest.mark.parametrize(
    ("kernel_id", "field"),
    [
        ("not-a-kernel-id", "kernel.kernel_id"),
        ("0123456789ab-cpu_x86_64-fast-0123abcd", "kernel.kernel_id"),  # another IR's hash
        (None, "kernel.kernel_id"),  # the STANDARD job's id for the FAST job, set below
    ],
    ids=["format", "ir-hash", "pipeline"],
)
def test_a_kernel_id_must_name_the_jobs_ir_and_pipeline(hub: UrzaHub, kernel_id: str | None, field: str) -> None:
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    if kernel_id is None:
        kernel_id = kernel_id_for(job).replace("-fast-", "-standard-")
    with pytest.raises(InvalidArgument) as caught:
        complete(hub, job, kernel_id=kernel_id)
    assert caught.value.violations[0].field == field
    assert _job(hub, job.job_id).status == JOB.COMPILE_JOB_STATUS_RUNNING


def test_nothing_is_recorded_when_the_store_write_fails(database_url: str, tmp_path: Path) -> None:
    class BrokenStore(FolderObjectStore):
        def put(self, key: str, data: bytes) -> None:
            raise Unavailable("object store down")

    hub = make_hub(database_url, BrokenStore(tmp_path / "store"))
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    with pytest.raises(Unavailable):
        complete(hub, job)
    assert _job(hub, job.job_id).status == JOB.COMPILE_JOB_STATUS_RUNNING
    assert hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.total_size == 0
    hub.close()


@pytest.mark.parametrize("rpc", ["get", "fail", "complete"])
def test_unknown_job_is_not_found(hub: UrzaHub, rpc: str) -> None:
    job = kernel_pb2.CompileJob(job_id="job-nope-fast", lease_token="a" * 32, ir=sample_ir(), pipeline=FAST)
    calls = {
        "get": lambda: hub.get_compile_job(urza_pb2.GetCompileJobRequest(job_id=job.job_id)),
        "fail": lambda: fail(hub, job),
        "complete": lambda: complete(hub, job),
    }
    with pytest.raises(NotFound) as caught:
        calls[rpc]()
    assert caught.value.reason == "JOB_NOT_FOUND"


def test_list_compile_jobs_pages_in_queue_order_and_filters_by_status(hub: UrzaHub) -> None:
    for seed in range(3):
        submit(hub, sample_ir(seed=seed))
    claimed = claim(hub)
    assert claimed is not None
    listed: list[str] = []
    token = ""
    while True:
        page = hub.list_compile_jobs(urza_pb2.ListCompileJobsRequest(page_size=4, page_token=token))
        listed.extend(job.job_id for job in page.jobs)
        if not (token := page.next_page_token):
            break
    assert len(listed) == 6 and len(set(listed)) == 6
    assert listed[0] == claimed.job_id
    running = hub.list_compile_jobs(urza_pb2.ListCompileJobsRequest(status=JOB.COMPILE_JOB_STATUS_RUNNING)).jobs
    assert [job.job_id for job in running] == [claimed.job_id]


def test_bad_claim_requests_name_the_field(hub: UrzaHub) -> None:
    cases = [
        (urza_pb2.ClaimCompileJobRequest(), "worker_id"),
        (urza_pb2.ClaimCompileJobRequest(worker_id="w", lease_seconds=3601), "lease_seconds"),
        (urza_pb2.ClaimCompileJobRequest(worker_id="w", pipelines=[0]), "pipelines[0]"),  # type: ignore[list-item]
    ]
    for request, field in cases:
        with pytest.raises(EsperError) as caught:
            hub.claim_compile_job(request)
        assert isinstance(caught.value, InvalidArgument)
        assert caught.value.violations[0].field == field


def test_a_lease_that_runs_out_during_the_upload_is_lost(database_url: str, tmp_path: Path) -> None:
    clock = FakeClock()

    class SlowStore(FolderObjectStore):
        def put(self, key: str, data: bytes) -> None:
            super().put(key, data)
            clock.advance(61)

    hub = make_hub(database_url, SlowStore(tmp_path / "store"), clock)
    submit(hub, pipelines=[FAST])
    job = claim(hub, lease=60)
    assert job is not None
    with pytest.raises(FailedPrecondition) as caught:
        complete(hub, job)
    assert caught.value.reason == "LEASE_LOST"
    assert hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.total_size == 0
    hub.close()


def test_an_upload_that_fails_the_artifact_check_is_refused_and_nothing_is_stored(hub: UrzaHub) -> None:
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    request = urza_pb2.CompleteCompileJobRequest(
        job_id=job.job_id,
        lease_token=job.lease_token,
        kernel=kernel_pb2.KernelArtifact(kernel_id=kernel_id_for(job), hardware_target="cpu"),
        artifact=b"not an archive at all",
    )
    with pytest.raises(InvalidArgument) as caught:
        hub.complete_compile_job(request)
    assert (caught.value.reason, caught.value.violations[0].field) == ("UNSAFE_ARTIFACT", "artifact")
    assert hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.total_size == 0
    assert _job(hub, job.job_id).status == JOB.COMPILE_JOB_STATUS_RUNNING


def test_with_trusted_signers_only_a_verifying_signature_is_stored(tmp_path: Path) -> None:
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "store", trust=TEST_TRUST)
    submit(hub, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    artifact = program_archive(b"signed")
    kernel = kernel_pb2.KernelArtifact(kernel_id=kernel_id_for(job), hardware_target="cpu", pipeline=FAST)
    request = urza_pb2.CompleteCompileJobRequest(
        job_id=job.job_id, lease_token=job.lease_token, kernel=kernel, artifact=artifact
    )
    with pytest.raises(InvalidArgument, match="unsigned") as caught:
        hub.complete_compile_job(request)
    assert (caught.value.reason, caught.value.violations[0].field) == ("BAD_SIGNATURE", "kernel.signature")
    signed(request.kernel, hashlib.sha256(artifact).hexdigest(), OTHER_SIGNER)
    with pytest.raises(InvalidArgument, match="not trusted"):
        hub.complete_compile_job(request)
    signed(request.kernel, hashlib.sha256(b"other bytes").hexdigest())
    with pytest.raises(InvalidArgument, match="does not verify"):
        hub.complete_compile_job(request)
    signed(request.kernel, hashlib.sha256(artifact).hexdigest())
    stored = hub.complete_compile_job(request).kernel
    assert stored.signature == request.kernel.signature
    assert hub.get_kernel(urza_pb2.GetKernelRequest(kernel_id=stored.kernel_id)).kernel.signature.key_id
    hub.close()
