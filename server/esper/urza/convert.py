"""Rows of Urza's tables <-> Leyline protos.

Rows are read as mappings (`result.mappings()`), so every converter takes a
`Mapping[str, Any]` and the `*_values` functions give what an INSERT takes.
Times are integer microseconds since the epoch in the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from esper.leyline.v1 import blueprint_pb2, kernel_pb2

Row = Mapping[Any, Any]
_US = 1_000_000


def timestamp_from_us(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // _US, nanos=(us % _US) * 1000)


def us_from_timestamp(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * _US + ts.nanos // 1000


def duration_from_us(us: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=us // _US, nanos=(us % _US) * 1000)


def us_from_duration(duration: duration_pb2.Duration) -> int:
    return duration.seconds * _US + duration.nanos // 1000


def shape_key(dims: Iterable[int]) -> str:
    """Canonical text of a shape, e.g. "16,8,8"; the kernels table stores it for exact matching."""
    return ",".join(str(int(dim)) for dim in dims)


def shape_from_key(key: str) -> blueprint_pb2.TensorShape:
    return blueprint_pb2.TensorShape(dims=[int(dim) for dim in key.split(",")] if key else [])


def blueprint_values(blueprint: blueprint_pb2.Blueprint) -> dict[str, Any]:
    return {
        "blueprint_id": blueprint.blueprint_id,
        "ir_sha256": blueprint.ir_sha256,
        "ir": blueprint.ir.SerializeToString(deterministic=True),
        "template_id": blueprint.template_id,
        "name": blueprint.name,
        "tier": int(blueprint.tier),
        "status": int(blueprint.status),
        "failure_reason": blueprint.failure_reason,
        "parameter_estimate": blueprint.parameter_estimate,
        "tags": json.dumps(list(blueprint.tags)),
        "input_kind": int(blueprint.ir.input_kind),
        "create_us": us_from_timestamp(blueprint.create_time),
        "update_us": us_from_timestamp(blueprint.update_time),
    }


def ir_from_row(row: Row) -> blueprint_pb2.BlueprintIR:
    return blueprint_pb2.BlueprintIR.FromString(bytes(row["ir"]))


def blueprint_to_proto(row: Row) -> blueprint_pb2.Blueprint:
    return blueprint_pb2.Blueprint(
        blueprint_id=row["blueprint_id"],
        template_id=row["template_id"],
        name=row["name"],
        tier=row["tier"],
        ir=ir_from_row(row),
        ir_sha256=row["ir_sha256"],
        status=row["status"],
        failure_reason=row["failure_reason"],
        parameter_estimate=row["parameter_estimate"],
        tags=json.loads(row["tags"]),
        create_time=timestamp_from_us(row["create_us"]),
        update_time=timestamp_from_us(row["update_us"]),
    )


def job_values(job: kernel_pb2.CompileJob) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "blueprint_id": job.blueprint_id,
        "pipeline": int(job.pipeline),
        "status": int(job.status),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "worker_id": job.worker_id,
        "lease_token": job.lease_token,
        "lease_expire_us": us_from_timestamp(job.lease_expire_time),
        "kernel_id": job.kernel_id,
        "create_us": us_from_timestamp(job.create_time),
        "update_us": us_from_timestamp(job.update_time),
    }


def job_to_proto(
    row: Row, *, ir: blueprint_pb2.BlueprintIR | None = None, with_lease: bool = False
) -> kernel_pb2.CompileJob:
    """A compile job; the lease (worker, token, expiry) only while RUNNING, and the token only
    when `with_lease`, since whoever holds it may complete the job."""
    job = kernel_pb2.CompileJob(
        job_id=row["job_id"],
        blueprint_id=row["blueprint_id"],
        pipeline=row["pipeline"],
        status=row["status"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        last_error=row["last_error"],
        kernel_id=row["kernel_id"],
        create_time=timestamp_from_us(row["create_us"]),
        update_time=timestamp_from_us(row["update_us"]),
    )
    if row["status"] == kernel_pb2.COMPILE_JOB_STATUS_RUNNING:
        job.worker_id = row["worker_id"]
        job.lease_expire_time.CopyFrom(timestamp_from_us(row["lease_expire_us"]))
        if with_lease:
            job.lease_token = row["lease_token"]
    if ir is not None:
        job.ir.CopyFrom(ir)
    return job


def kernel_values(kernel: kernel_pb2.KernelArtifact, *, object_key: str) -> dict[str, Any]:
    """Columns of a kernel row; the lease columns start empty."""
    return {
        "kernel_id": kernel.kernel_id,
        "blueprint_id": kernel.blueprint_id,
        "pipeline": int(kernel.pipeline),
        "hardware_target": kernel.hardware_target,
        "sha256": kernel.sha256,
        "size_bytes": kernel.size_bytes,
        "object_key": object_key,
        "status": int(kernel.status),
        "input_kind": int(kernel.input_kind),
        "input_shape": shape_key(kernel.input_shape.dims),
        "growth_kind": int(kernel.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH),
        "output_shape": shape_key(kernel.output_shape.dims or kernel.input_shape.dims),
        "parameter_count": kernel.parameter_count,
        "toolchain_hash": kernel.toolchain_hash,
        "compile_duration_us": us_from_duration(kernel.compile_duration),
        "template_id": kernel.template_id,
        "worker_id": "",
        "lease_token": "",
        "lease_expire_us": 0,
        "create_us": us_from_timestamp(kernel.create_time),
        "update_us": us_from_timestamp(kernel.update_time),
        "signature": kernel.signature.signature,
        "signing_key_id": kernel.signature.key_id,
    }


def kernel_to_proto(row: Row, *, tags: Sequence[str] = (), report: bytes | None = None) -> kernel_pb2.KernelArtifact:
    kernel = kernel_pb2.KernelArtifact(
        kernel_id=row["kernel_id"],
        blueprint_id=row["blueprint_id"],
        pipeline=row["pipeline"],
        hardware_target=row["hardware_target"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        status=row["status"],
        tags=sorted(tags),
        input_kind=row["input_kind"],
        input_shape=shape_from_key(row["input_shape"]),
        growth_kind=row["growth_kind"],
        output_shape=shape_from_key(row["output_shape"]),
        parameter_count=row["parameter_count"],
        toolchain_hash=row["toolchain_hash"],
        compile_duration=duration_from_us(row["compile_duration_us"]),
        create_time=timestamp_from_us(row["create_us"]),
        update_time=timestamp_from_us(row["update_us"]),
        template_id=row["template_id"],
    )
    if row["signature"]:
        kernel.signature.signature = bytes(row["signature"])
        kernel.signature.key_id = row["signing_key_id"]
    if report is not None:
        kernel.validation_report.ParseFromString(bytes(report))
    return kernel
