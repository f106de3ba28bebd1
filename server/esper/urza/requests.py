"""Request checks for every UrzaService rpc: one `check_<rpc>` per request type.

Each raises InvalidArgument naming the offending field. List requests return the
effective `Page` (size, offset and the filter fingerprint its tokens are bound to).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from esper import checks, ids, pipelines
from esper.errors import InvalidArgument
from esper.ir import validate_ir
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.paging import decode_page_token, validate_page_size
from esper.urza.config import MAX_CHUNK_BYTES, MIB, MIN_CHUNK_BYTES

MAX_ARTIFACT_BYTES = 32 * MIB
MAX_TAGS = 64
MAX_NAME_LENGTH = 256
MAX_LEASE_SECONDS = 3600
MAX_PREFERRED_BLUEPRINTS = 1000
MAX_DIM = 65536
HARDWARE_TARGET_PATTERN = re.compile(r"[a-z0-9_]{1,128}")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@dataclass(frozen=True)
class Page:
    """Which slice of a listing a request asks for."""

    size: int
    offset: int
    fingerprint: str


def check_create_blueprint(request: urza_pb2.CreateBlueprintRequest) -> None:
    if not request.HasField("ir"):
        raise InvalidArgument.for_field("ir", "is required")
    validate_ir(request.ir, field_prefix="ir")
    ids.TEMPLATE.check("template_id", request.template_id, required=False)
    if len(request.name) > MAX_NAME_LENGTH:
        raise InvalidArgument.for_field("name", f"must be at most {MAX_NAME_LENGTH} characters")
    _check_enum("tier", request.tier, blueprint_pb2.BlueprintTier.values())
    seen: set[int] = set()
    for index, pipeline in enumerate(request.pipelines):
        _check_pipeline(f"pipelines[{index}]", pipeline)
        if pipeline in seen:
            raise InvalidArgument.for_field(f"pipelines[{index}]", "is listed twice")
        seen.add(pipeline)
    _check_tags("tags", request.tags)


def check_get_blueprint(request: urza_pb2.GetBlueprintRequest) -> None:
    ids.BLUEPRINT.check("blueprint_id", request.blueprint_id)


def check_list_blueprints(request: urza_pb2.ListBlueprintsRequest) -> Page:
    _check_enum("status", request.status, blueprint_pb2.BlueprintStatus.values())
    return _page(request.page_size, request.page_token, f"blueprints:status={int(request.status)}")


DEVICE_KINDS = ("cpu", "cuda")


def check_query_kernels(request: urza_pb2.QueryKernelsRequest) -> Page:
    query = request.query
    ids.BLUEPRINT.check("query.blueprint_id", query.blueprint_id, required=False)
    _check_enum("query.status", query.status, kernel_pb2.KernelStatus.values())
    _check_enum("query.pipeline", query.pipeline, kernel_pb2.CompilationPipeline.values())
    _check_enum("query.input_kind", query.input_kind, blueprint_pb2.InputKind.values())
    _check_enum("query.growth_kind", query.growth_kind, blueprint_pb2.GrowthKind.values())
    _check_tags("query.tags_all", query.tags_all)
    for name in ("input_shape", "output_shape"):
        for index, dim in enumerate(getattr(query, name).dims):
            checks.in_range(f"query.{name}.dims[{index}]", dim, 1, MAX_DIM)
    ids.TEMPLATE.check("query.template_id", query.template_id, required=False)
    if query.device_kind:
        checks.one_of("query.device_kind", query.device_kind, DEVICE_KINDS)
    fingerprint = "kernels:" + query.SerializeToString(deterministic=True).hex()
    return _page(request.page_size, request.page_token, fingerprint)


def check_get_kernel(request: urza_pb2.GetKernelRequest) -> None:
    ids.KERNEL.check("kernel_id", request.kernel_id)


def check_download_kernel(request: urza_pb2.DownloadKernelRequest, *, default_chunk: int) -> int:
    """The effective chunk size."""
    ids.KERNEL.check("kernel_id", request.kernel_id)
    if request.chunk_size == 0:
        return default_chunk
    checks.in_range("chunk_size", request.chunk_size, MIN_CHUNK_BYTES, MAX_CHUNK_BYTES, note="(0 means 1 MiB)")
    return request.chunk_size


def check_claim_compile_job(request: urza_pb2.ClaimCompileJobRequest, *, default_lease: int) -> int:
    """The effective lease length in seconds."""
    ids.WORKER.check("worker_id", request.worker_id)
    for index, pipeline in enumerate(request.pipelines):
        _check_pipeline(f"pipelines[{index}]", pipeline)
    if len(request.preferred_blueprint_ids) > MAX_PREFERRED_BLUEPRINTS:
        raise InvalidArgument.for_field(
            "preferred_blueprint_ids",
            f"holds {len(request.preferred_blueprint_ids)} ids, at most {MAX_PREFERRED_BLUEPRINTS}",
        )
    for index, blueprint_id in enumerate(request.preferred_blueprint_ids):
        ids.BLUEPRINT.check(f"preferred_blueprint_ids[{index}]", blueprint_id)
    return _lease_seconds(request.lease_seconds, default_lease)


def check_complete_compile_job(request: urza_pb2.CompleteCompileJobRequest) -> None:
    ids.JOB.check("job_id", request.job_id)
    ids.LEASE.check("lease_token", request.lease_token)
    if not request.HasField("kernel"):
        raise InvalidArgument.for_field("kernel", "is required")
    kernel = request.kernel
    if not ids.MINTED_KERNEL_ID.fullmatch(kernel.kernel_id):
        raise InvalidArgument.for_field(
            "kernel.kernel_id", "must be <12 hex>-<target [a-z0-9_]+>-<fast|standard|aggressive>-<8 hex>"
        )
    if not kernel.hardware_target or len(kernel.hardware_target) > 128:
        raise InvalidArgument.for_field("kernel.hardware_target", "is required (at most 128 characters)")
    if len(kernel.toolchain_hash) > 128:
        raise InvalidArgument.for_field("kernel.toolchain_hash", "must be at most 128 characters")
    if kernel.compile_duration.seconds < 0 or kernel.compile_duration.nanos < 0:
        raise InvalidArgument.for_field("kernel.compile_duration", "must not be negative")
    if not request.artifact:
        raise InvalidArgument.for_field("artifact", "is required (the .pt2 bytes)")
    if len(request.artifact) > MAX_ARTIFACT_BYTES:
        raise InvalidArgument.for_field("artifact", f"is larger than {MAX_ARTIFACT_BYTES} bytes")


def check_fail_compile_job(request: urza_pb2.FailCompileJobRequest) -> None:
    ids.JOB.check("job_id", request.job_id)
    ids.LEASE.check("lease_token", request.lease_token)
    if not request.error_message.strip():
        raise InvalidArgument.for_field("error_message", "is required (the compiler's message)")


def check_get_compile_job(request: urza_pb2.GetCompileJobRequest) -> None:
    ids.JOB.check("job_id", request.job_id)


def check_list_compile_jobs(request: urza_pb2.ListCompileJobsRequest) -> Page:
    _check_enum("status", request.status, kernel_pb2.CompileJobStatus.values())
    return _page(request.page_size, request.page_token, f"compile_jobs:status={int(request.status)}")


def check_claim_validation_job(request: urza_pb2.ClaimValidationJobRequest, *, default_lease: int) -> int:
    """The effective lease length in seconds."""
    ids.WORKER.check("worker_id", request.worker_id)
    _check_hardware_target("hardware_target", request.hardware_target)
    return _lease_seconds(request.lease_seconds, default_lease)


def _check_hardware_target(name: str, value: str) -> None:
    """Empty (any target) or a target as Tezzeret names one: [a-z0-9_], at most 128 characters."""
    if value and not HARDWARE_TARGET_PATTERN.fullmatch(value):
        raise InvalidArgument.for_field(name, f"must match {HARDWARE_TARGET_PATTERN.pattern}, got {value[:64]!r}")


def check_submit_validation_report(request: urza_pb2.SubmitValidationReportRequest) -> None:
    ids.KERNEL.check("kernel_id", request.kernel_id)
    ids.LEASE.check("lease_token", request.lease_token)
    if not request.HasField("report"):
        raise InvalidArgument.for_field("report", "is required")
    report = request.report
    if report.kernel_id and report.kernel_id != request.kernel_id:
        raise InvalidArgument.for_field("report.kernel_id", f"is {report.kernel_id!r}, not {request.kernel_id!r}")
    for name in (
        "latency_ms_mean",
        "latency_ms_p99",
        "throughput_ops_per_sec",
        "memory_mb_peak",
        "precision_drift_vs_fp32",
        "power_watts_avg",
    ):
        checks.non_negative(f"report.{name}", getattr(report, name))
    _check_tags("report.tags", report.tags)
    if len(report.hardware_target) > 128:
        raise InvalidArgument.for_field("report.hardware_target", "must be at most 128 characters")


def _check_enum(field: str, value: int, known: Iterable[int]) -> None:
    if value not in set(known):
        raise InvalidArgument.for_field(field, f"unknown value {value}")


def _check_pipeline(field: str, pipeline: int) -> None:
    if pipeline not in pipelines.NAMES:
        raise InvalidArgument.for_field(field, f"must be FAST, STANDARD or AGGRESSIVE, got {pipeline}")


def _check_tags(field: str, tags: Iterable[str]) -> None:
    tags = list(tags)
    if len(tags) > MAX_TAGS:
        raise InvalidArgument.for_field(field, f"at most {MAX_TAGS} tags")
    for index, tag in enumerate(tags):
        if not TAG_PATTERN.match(tag):
            raise InvalidArgument.for_field(f"{field}[{index}]", "must match [A-Za-z0-9_.:-]{1,64}")


def _lease_seconds(value: int, default: int) -> int:
    if value == 0:
        return default
    checks.in_range("lease_seconds", value, 1, MAX_LEASE_SECONDS, note=f"(0 means {default})")
    return value


def _page(page_size: int, page_token: str, fingerprint: str) -> Page:
    size = validate_page_size(page_size, field="page_size")
    offset = decode_page_token(page_token, fingerprint, field="page_token")
    return Page(size=size, offset=offset, fingerprint=fingerprint)
