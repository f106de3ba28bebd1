"""UrzaService over a real in-process gRPC server, through UrzaClient."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.clients import UrzaClient
from esper.clients.base import ClientConfig
from esper.errors import DataLoss, InvalidArgument, NotFound, Unavailable
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.leyline.v1.services import URZA_SERVICE
from esper.mesh.hosting import host
from esper.urza.fetch import download_kernel_bytes
from esper.urza.hub import UrzaHub
from tests.support.servers import ServerFactory
from tests.support.urza import (
    claim,
    complete,
    fail,
    make_hub,
    program_archive,
    run_core_flow,
    sample_ir,
    submit,
    validate,
)

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "artifacts")
    yield hub
    hub.close()


@pytest.fixture
def client(hub: UrzaHub, grpc_server: ServerFactory) -> Iterator[UrzaClient]:
    server = grpc_server([host(URZA_SERVICE.bind(hub))], service_name="urza")
    with UrzaClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


def test_blueprint_to_downloaded_kernel_round_trip(client: UrzaClient) -> None:
    created = client.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=sample_ir(), pipelines=[FAST]))
    assert created.created
    blueprint_id = created.blueprint.blueprint_id
    job = claim(client, "tezzeret-1")
    assert job is not None and job.ir == created.blueprint.ir
    # The largest artifact Urza accepts travels in one message.
    payload = bytes(range(256)) * (32 * 1024 * 1024 // 256 - 4)
    artifact = program_archive(payload)
    kernel = complete(client, job, payload)
    assert kernel.sha256 == hashlib.sha256(artifact).hexdigest()
    validated = validate(client, tags=("high_speed",))
    assert validated.status == kernel_pb2.KERNEL_STATUS_VALIDATED
    result = client.query_kernels(
        urza_pb2.QueryKernelsRequest(
            query=kernel_pb2.KernelQuery(status=kernel_pb2.KERNEL_STATUS_VALIDATED, tags_all=["high_speed"])
        )
    ).result
    assert [k.kernel_id for k in result.kernels] == [kernel.kernel_id]
    data, metadata = download_kernel_bytes(client, kernel.kernel_id, chunk_size=4 * 1024 * 1024)
    assert data == artifact
    assert metadata.kernel_id == kernel.kernel_id
    got = client.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id))
    assert got.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_VALIDATED
    assert [k.kernel_id for k in got.kernels] == [kernel.kernel_id]


def test_the_compile_queue_over_the_wire(client: UrzaClient) -> None:
    submit(client, pipelines=[FAST])
    job = claim(client)
    assert job is not None
    assert fail(client, job, "export crashed").status == kernel_pb2.COMPILE_JOB_STATUS_QUEUED
    jobs = client.list_compile_jobs(urza_pb2.ListCompileJobsRequest()).jobs
    assert [(j.job_id, j.last_error) for j in jobs] == [(job.job_id, "export crashed")]
    assert client.get_compile_job(urza_pb2.GetCompileJobRequest(job_id=job.job_id)).job.attempts == 1


def test_unknown_ids_are_not_found_with_their_reason(client: UrzaClient) -> None:
    with pytest.raises(NotFound) as caught:
        client.get_kernel(urza_pb2.GetKernelRequest(kernel_id="0123456789ab-cpu-fast-01234567"))
    assert caught.value.reason == "KERNEL_NOT_FOUND"
    with pytest.raises(NotFound) as caught:
        list(client.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id="0123456789ab-cpu-fast-01234567")))
    assert caught.value.reason == "KERNEL_NOT_FOUND"
    with pytest.raises(NotFound) as caught:
        client.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id="bp-0000000000000000"))
    assert caught.value.reason == "BLUEPRINT_NOT_FOUND"
    with pytest.raises(NotFound) as caught:
        client.get_compile_job(urza_pb2.GetCompileJobRequest(job_id="job-nope"))
    assert caught.value.reason == "JOB_NOT_FOUND"


def test_a_malformed_ir_is_invalid_argument_naming_the_node(client: UrzaClient) -> None:
    ir = sample_ir()
    ir.nodes[2].output_shape.dims[0] = 17
    with pytest.raises(InvalidArgument) as caught:
        client.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=ir))
    assert caught.value.reason == "INVALID_IR"
    assert [violation.field for violation in caught.value.violations] == ["ir.nodes[2].output_shape"]
    assert "relu_0" in caught.value.violations[0].description


def test_corrupted_bytes_are_data_loss_over_the_wire(client: UrzaClient, tmp_path: Path) -> None:
    submit(client, pipelines=[FAST])
    job = claim(client)
    assert job is not None
    kernel = complete(client, job, b"x" * 5000)
    (path,) = (tmp_path / "artifacts" / "kernels" / kernel.kernel_id).glob("*.pt2")
    path.write_bytes(b"y" * 5000)
    with pytest.raises(DataLoss) as caught:
        download_kernel_bytes(client, kernel.kernel_id)
    assert caught.value.reason == "CHECKSUM_MISMATCH"


def test_a_server_that_is_down_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ClientConfig(address=f"127.0.0.1:{port}", deadline_seconds=2.0, max_attempts=2)
    with UrzaClient(config) as client, pytest.raises(Unavailable):
        client.get_kernel(urza_pb2.GetKernelRequest(kernel_id="0123456789ab-cpu-fast-01234567"))


def test_core_flow_over_grpc(client: UrzaClient) -> None:
    run_core_flow(client)
