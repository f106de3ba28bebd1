"""A compiled kernel's record: its id checked against its job, and the row Urza stores.

Artifact bytes live under a key that includes their SHA-256, so two uploads of
different bytes for one kernel id can never overwrite each other in the store;
only the row the database accepted names the bytes that are served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esper.errors import EsperError, InvalidArgument
from esper.ids import MINTED_KERNEL_ID
from esper.ir import growth_kind
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.pipelines import pipeline_name
from esper.trust.artifact_format import check_artifact_format
from esper.urza.convert import Row, ir_from_row, kernel_values, timestamp_from_us

if TYPE_CHECKING:
    from esper.trust.kernel_signing import TrustedSigners


def artifact_key(kernel_id: str, sha256: str) -> str:
    return f"kernels/{kernel_id}/{sha256}.pt2"


def new_kernel_row(
    request: urza_pb2.CompleteCompileJobRequest, job: Row, blueprint: Row, *, sha256: str, now_us: int
) -> dict[str, Any]:
    """The kernel row to insert: Urza sets status, sha256 and size, and takes blueprint, pipeline,
    input kind, growth kind and shapes from the job and its IR; the worker supplies the rest."""
    submitted = request.kernel
    check_kernel_identity(submitted, job, blueprint)
    ir = ir_from_row(blueprint)
    kernel = kernel_pb2.KernelArtifact(
        kernel_id=submitted.kernel_id,
        blueprint_id=job["blueprint_id"],
        pipeline=job["pipeline"],
        hardware_target=submitted.hardware_target,
        sha256=sha256,
        size_bytes=len(request.artifact),
        status=kernel_pb2.KERNEL_STATUS_COMPILED,
        input_kind=ir.input_kind,
        input_shape=ir.input_shape,
        growth_kind=growth_kind(ir),  # type: ignore[arg-type]
        output_shape=ir.output_shape,
        parameter_count=submitted.parameter_count or blueprint["parameter_estimate"],
        toolchain_hash=submitted.toolchain_hash or submitted.kernel_id.rsplit("-", 1)[1],
        compile_duration=submitted.compile_duration,
        template_id=blueprint["template_id"],
        create_time=timestamp_from_us(now_us),
        update_time=timestamp_from_us(now_us),
        signature=submitted.signature if submitted.HasField("signature") else None,
    )
    return kernel_values(kernel, object_key=artifact_key(kernel.kernel_id, sha256))


def check_kernel_identity(kernel: kernel_pb2.KernelArtifact, job: Row, blueprint: Row) -> None:
    """The kernel id must name the job's IR and pipeline (docs/assets.md, "Kernel ids")."""
    match = MINTED_KERNEL_ID.fullmatch(kernel.kernel_id)
    if match is None:
        raise InvalidArgument.for_field("kernel.kernel_id", "must be <12 hex>-<target>-<pipeline>-<8 hex>")
    ir_part, _target, pipeline_part, _toolchain = match.groups()
    if ir_part != blueprint["ir_sha256"][:12]:
        raise InvalidArgument.for_field(
            "kernel.kernel_id",
            f"IR hash part {ir_part} does not match blueprint {blueprint['blueprint_id']} "
            f"(ir_sha256 starts {blueprint['ir_sha256'][:12]})",
        )
    if pipeline_part != pipeline_name(job["pipeline"]):
        raise InvalidArgument.for_field(
            "kernel.kernel_id",
            f"pipeline part {pipeline_part!r} does not match job {job['job_id']} ({pipeline_name(job['pipeline'])})",
        )
    if kernel.blueprint_id and kernel.blueprint_id != job["blueprint_id"]:
        raise InvalidArgument.for_field("kernel.blueprint_id", f"job {job['job_id']} is for {job['blueprint_id']}")
    if kernel.pipeline and kernel.pipeline != job["pipeline"]:
        raise InvalidArgument.for_field("kernel.pipeline", f"job {job['job_id']} runs another pipeline")


def check_uploaded_artifact(
    request: urza_pb2.CompleteCompileJobRequest, pipeline: int, sha256: str, trust: TrustedSigners | None
) -> None:
    """Refuse an upload that fails the artifact format check, or (with `trust`) whose signature does not
    verify: nothing reaches the store that a verifying consumer would refuse."""
    try:
        check_artifact_format(request.artifact, pipeline)
    except EsperError as exc:
        raise InvalidArgument.for_field("artifact", exc.message, reason="UNSAFE_ARTIFACT") from None
    if trust is None:
        return
    kernel = kernel_pb2.KernelArtifact()
    kernel.CopyFrom(request.kernel)
    kernel.pipeline = pipeline  # type: ignore[assignment]
    try:
        trust.verify(kernel, sha256)
    except EsperError as exc:
        raise InvalidArgument.for_field("kernel.signature", exc.message, reason="BAD_SIGNATURE") from None
