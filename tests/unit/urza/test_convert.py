"""Rows <-> protos round trips."""

from __future__ import annotations

from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urza.convert import (
    blueprint_to_proto,
    blueprint_values,
    job_to_proto,
    job_values,
    kernel_to_proto,
    kernel_values,
    shape_from_key,
    shape_key,
    timestamp_from_us,
    us_from_timestamp,
)
from tests.support.urza import sample_ir


def test_blueprint_round_trip() -> None:
    blueprint = blueprint_pb2.Blueprint(
        blueprint_id="bp-0123456789abcdef",
        template_id="mlp",
        name="MLP",
        tier=blueprint_pb2.BLUEPRINT_TIER_EXPERIMENTAL,
        ir=sample_ir(),
        ir_sha256="ab" * 32,
        status=blueprint_pb2.BLUEPRINT_STATUS_FAILED,
        failure_reason="FAST: boom",
        parameter_estimate=544,
        tags=["residual", "mlp"],
        create_time=timestamp_from_us(1_700_000_000_123_456),
        update_time=timestamp_from_us(1_700_000_001_000_000),
    )
    assert blueprint_to_proto(blueprint_values(blueprint)) == blueprint


def test_running_job_round_trip_with_its_lease() -> None:
    job = kernel_pb2.CompileJob(
        job_id="job-bp-0123456789abcdef-fast",
        blueprint_id="bp-0123456789abcdef",
        pipeline=kernel_pb2.COMPILATION_PIPELINE_FAST,
        status=kernel_pb2.COMPILE_JOB_STATUS_RUNNING,
        attempts=2,
        max_attempts=3,
        last_error="previous attempt crashed",
        worker_id="tezzeret-1",
        lease_token="f" * 32,
        lease_expire_time=timestamp_from_us(1_700_000_300_000_000),
        create_time=timestamp_from_us(1_700_000_000_000_000),
        update_time=timestamp_from_us(1_700_000_000_000_001),
    )
    assert job_to_proto(job_values(job), with_lease=True) == job
    without_token = job_to_proto(job_values(job))
    assert without_token.lease_token == ""
    assert without_token.worker_id == "tezzeret-1"


def test_a_finished_job_shows_no_lease() -> None:
    job = kernel_pb2.CompileJob(
        job_id="j",
        status=kernel_pb2.COMPILE_JOB_STATUS_SUCCEEDED,
        worker_id="w",
        lease_token="t",
        kernel_id="k",
    )
    shown = job_to_proto(job_values(job), with_lease=True)
    assert (shown.worker_id, shown.lease_token, shown.HasField("lease_expire_time")) == ("", "", False)
    assert shown.kernel_id == "k"


def test_kernel_round_trip_with_tags_and_report() -> None:
    report = kernel_pb2.UrabraskValidationReport(kernel_id="k", passed=True, latency_ms_mean=0.25, tags=["fast"])
    kernel = kernel_pb2.KernelArtifact(
        kernel_id="0123456789ab-cpu_x86_64-fast-01234567",
        blueprint_id="bp-0123456789abcdef",
        pipeline=kernel_pb2.COMPILATION_PIPELINE_FAST,
        hardware_target="cpu-x86_64",
        sha256="cd" * 32,
        size_bytes=12345,
        status=kernel_pb2.KERNEL_STATUS_VALIDATED,
        tags=["fast", "low_memory"],
        input_kind=blueprint_pb2.INPUT_KIND_IMAGE,
        input_shape=blueprint_pb2.TensorShape(dims=[16, 8, 8]),
        growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH,
        output_shape=blueprint_pb2.TensorShape(dims=[10]),
        parameter_count=2048,
        toolchain_hash="01234567",
        validation_report=report,
        create_time=timestamp_from_us(1_700_000_000_000_000),
        update_time=timestamp_from_us(1_700_000_000_500_000),
        template_id="conv",
    )
    kernel.compile_duration.FromMilliseconds(1500)
    row = kernel_values(kernel, object_key="kernels/x/y.pt2")
    assert row["object_key"] == "kernels/x/y.pt2"
    rebuilt = kernel_to_proto(row, tags=["low_memory", "fast"], report=report.SerializeToString())
    assert rebuilt == kernel


def test_a_kernel_that_does_not_say_is_stored_as_a_depth_kernel_keeping_its_shape() -> None:
    kernel = kernel_pb2.KernelArtifact(kernel_id="k", input_shape=blueprint_pb2.TensorShape(dims=[16]))
    row = kernel_values(kernel, object_key="o")
    assert (row["growth_kind"], row["output_shape"]) == (blueprint_pb2.GROWTH_KIND_DEPTH, "16")


def test_times_and_shapes() -> None:
    assert us_from_timestamp(timestamp_from_us(1_234_567_890_123_456)) == 1_234_567_890_123_456
    assert shape_key([16, 8, 8]) == "16,8,8"
    assert list(shape_from_key("16,8,8").dims) == [16, 8, 8]
    assert list(shape_from_key("").dims) == []
