"""Helpers shared by the Urza tests (unit, rpc and integration)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

from esper.ir import IRBuilder, ir_sha256
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.trust.kernel_signing import KernelSigner, TrustedSigners
from esper.urza.config import UrzaConfig
from esper.urza.db import UrzaDatabase
from esper.urza.hub import UrzaHub
from esper.urza.store import FolderObjectStore, ObjectStore
from tests.support.signing import TEST_SIGNER

START_US = 1_700_000_000_000_000
TARGET = "cpu_x86_64"
PIPELINE_NAMES = {
    kernel_pb2.COMPILATION_PIPELINE_FAST: "fast",
    kernel_pb2.COMPILATION_PIPELINE_STANDARD: "standard",
    kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE: "aggressive",
}


class FakeClock:
    """Microseconds since the epoch; moves only when told to (one microsecond per reading, so
    rows created one after another are ordered)."""

    def __init__(self, start_us: int = START_US) -> None:
        self.now_us = start_us

    def __call__(self) -> int:
        self.now_us += 1
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


def sample_ir(width: int = 16, *, seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """A small residual MLP block on [width] features; `seed` changes its hash."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [width], init_seed=seed)
    hidden = builder.linear(builder.input, width)
    hidden = builder.activation(blueprint_pb2.OP_TYPE_RELU, hidden)
    hidden = builder.linear(hidden, width)
    return builder.build(builder.add_(builder.input, hidden))


def make_hub(
    database_url: str,
    store: ObjectStore | Path,
    clock: FakeClock | None = None,
    *,
    trust: TrustedSigners | None = None,
    **config: Any,
) -> UrzaHub:
    if isinstance(store, Path):
        store = FolderObjectStore(store)
    settings = UrzaConfig(database_url=database_url, store="unused-by-tests", **config)
    database = UrzaDatabase.open(database_url)
    return UrzaHub(database, store, settings, clock=clock or FakeClock(), trust=trust)


def kernel_id_for(job: kernel_pb2.CompileJob, *, toolchain: str = "0123abcd", target: str = TARGET) -> str:
    return f"{ir_sha256(job.ir)[:12]}-{target}-{PIPELINE_NAMES[job.pipeline]}-{toolchain}"


def submit(api: UrzaServiceApi, ir: blueprint_pb2.BlueprintIR | None = None, **fields: Any) -> blueprint_pb2.Blueprint:
    request = urza_pb2.CreateBlueprintRequest(ir=ir if ir is not None else sample_ir(), **fields)
    return api.create_blueprint(request).blueprint


def claim(
    api: UrzaServiceApi, worker: str = "worker-a", *pipelines: kernel_pb2.CompilationPipeline, lease: int = 0
) -> kernel_pb2.CompileJob | None:
    response = api.claim_compile_job(
        urza_pb2.ClaimCompileJobRequest(worker_id=worker, pipelines=pipelines, lease_seconds=lease)
    )
    return response.job if response.HasField("job") else None


def program_archive(payload: bytes) -> bytes:
    """The smallest archive that passes the artifact format check, carrying `payload` as its program.

    Deterministic: the same payload gives the same bytes (so the same SHA-256).
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in (
            ("archive/archive_format", b"pt2"),
            ("archive/models/model.json", payload),
            ("archive/data/weights/model_weights_config.json", b'{"config": {}}'),
            ("archive/data/sample_inputs/model.pt", b""),
        ):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content)
    return out.getvalue()


def complete(
    api: UrzaServiceApi,
    job: kernel_pb2.CompileJob,
    artifact: bytes = b"pt2-bytes",
    *,
    signer: KernelSigner | None = TEST_SIGNER,
    **kernel_fields: Any,
) -> kernel_pb2.KernelArtifact:
    """Complete `job` with `artifact` wrapped in a program archive (`program_archive`), signed by `signer`."""
    kernel_fields.setdefault("kernel_id", kernel_id_for(job))
    kernel_fields.setdefault("hardware_target", "cpu-x86_64")
    kernel_fields.setdefault("pipeline", job.pipeline)
    request = urza_pb2.CompleteCompileJobRequest(
        job_id=job.job_id,
        lease_token=job.lease_token,
        kernel=kernel_pb2.KernelArtifact(**kernel_fields),
        artifact=program_archive(artifact),
    )
    if signer is not None:
        request.kernel.signature.CopyFrom(signer.sign(request.kernel, hashlib.sha256(request.artifact).hexdigest()))
    return api.complete_compile_job(request).kernel


def fail(
    api: UrzaServiceApi, job: kernel_pb2.CompileJob, message: str = "boom", retryable: bool = True
) -> kernel_pb2.CompileJob:
    request = urza_pb2.FailCompileJobRequest(
        job_id=job.job_id, lease_token=job.lease_token, error_message=message, retryable=retryable
    )
    return api.fail_compile_job(request).job


def validate(
    api: UrzaServiceApi,
    worker: str = "validator",
    *,
    passed: bool = True,
    tags: tuple[str, ...] = (),
    reason: str = "",
) -> kernel_pb2.KernelArtifact:
    claimed = api.claim_validation_job(urza_pb2.ClaimValidationJobRequest(worker_id=worker))
    assert claimed.HasField("kernel"), "no kernel waiting for validation"
    report = kernel_pb2.UrabraskValidationReport(
        passed=passed,
        failure_reason=reason,
        latency_ms_mean=0.5,
        tags=list(tags),
        hardware_target="cpu-x86_64",
    )
    request = urza_pb2.SubmitValidationReportRequest(
        kernel_id=claimed.kernel.kernel_id, lease_token=claimed.lease_token, report=report
    )
    return api.submit_validation_report(request).kernel


def compile_all(api: UrzaServiceApi, artifact: bytes = b"pt2-bytes") -> list[kernel_pb2.KernelArtifact]:
    """Claim and complete every queued job; the kernels produced."""
    produced = []
    while (job := claim(api)) is not None:
        produced.append(complete(api, job, artifact + job.job_id.encode()))
    return produced


def run_core_flow(api: UrzaServiceApi) -> None:
    """The asset pipeline end to end through any UrzaServiceApi, asserting every step."""
    created = api.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=sample_ir(seed=7), template_id="mlp"))
    again = api.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=sample_ir(seed=7)))
    assert created.created and not again.created
    blueprint_id = created.blueprint.blueprint_id
    fast = claim(api, "tezzeret-a", kernel_pb2.COMPILATION_PIPELINE_FAST)
    standard = claim(api, "tezzeret-b")
    assert fast is not None and standard is not None
    assert {fast.job_id, standard.job_id} == {f"job-{blueprint_id}-fast", f"job-{blueprint_id}-standard"}
    kernel = complete(api, fast, b"fast artifact bytes")
    assert complete(api, fast, b"fast artifact bytes") == kernel  # idempotent retry
    requeued = fail(api, standard, "inductor crashed", retryable=False)
    assert requeued.status == kernel_pb2.COMPILE_JOB_STATUS_FAILED
    status = api.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id)).blueprint.status
    assert status == blueprint_pb2.BLUEPRINT_STATUS_COMPILED
    validated = validate(api, tags=("high_speed", "low_memory"))
    assert (validated.kernel_id, validated.status) == (kernel.kernel_id, kernel_pb2.KERNEL_STATUS_VALIDATED)
    got = api.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id))
    assert got.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_VALIDATED
    query = kernel_pb2.KernelQuery(
        status=kernel_pb2.KERNEL_STATUS_VALIDATED,
        tags_all=["low_memory", "high_speed"],
        input_shape=blueprint_pb2.TensorShape(dims=[16]),
        template_id="mlp",
    )
    result = api.query_kernels(urza_pb2.QueryKernelsRequest(query=query)).result
    assert ([k.kernel_id for k in result.kernels], result.total_size) == ([kernel.kernel_id], 1)
    chunks = list(api.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id)))
    assert b"".join(chunk.chunk_data for chunk in chunks) == program_archive(b"fast artifact bytes")
    assert chunks[0].sha256 == kernel.sha256
