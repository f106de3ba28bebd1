"""Tezzeret over the wire: a worker compiling for a remote Urza (UrzaClient), and TezzeretService
answering through the TezzeretClient, both on real in-process gRPC servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.clients import TezzeretClient, UrzaClient
from esper.clients.base import ClientConfig
from esper.errors import InvalidArgument
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, tezzeret_pb2
from esper.leyline.v1.services import TEZZERET_SERVICE, URZA_SERVICE
from esper.mesh.hosting import host
from esper.tezzeret.artifacts import load_kernel_module
from esper.tezzeret.config import FAST, STANDARD, TezzeretConfig
from esper.tezzeret.service import TezzeretService
from esper.tezzeret.worker import TezzeretWorker
from esper.urza.config import UrzaConfig
from esper.urza.fetch import download_kernel_bytes
from esper.urza.hub import UrzaHub
from tests.support.servers import ServerFactory
from tests.support.tezzeret import ManualClock, StubCompiler, blueprint, mlp_ir, submit

JOB = kernel_pb2.CompileJobStatus


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def hub(tmp_path: Path, clock: ManualClock) -> Iterator[UrzaHub]:
    hub = UrzaHub.open(UrzaConfig(data_dir=str(tmp_path / "urza"), compile_max_attempts=3), clock=clock)
    yield hub
    hub.close()


@pytest.fixture
def remote_urza(grpc_server: ServerFactory, hub: UrzaHub) -> Iterator[UrzaClient]:
    server = grpc_server([host(URZA_SERVICE.bind(hub))], service_name="urza")
    with UrzaClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


def _config(tmp_path: Path, **overrides: object) -> TezzeretConfig:
    return TezzeretConfig(
        worker_id="tezzeret-rpc",
        wal_dir=tmp_path / "wal",
        work_dir=tmp_path / "work",
        **overrides,  # type: ignore[arg-type]
    )


def test_a_worker_compiles_for_a_remote_urza_and_reports_over_grpc(
    grpc_server: ServerFactory, hub: UrzaHub, remote_urza: UrzaClient, tmp_path: Path
) -> None:
    blueprint_id = submit(hub, mlp_ir(), FAST, STANDARD)
    worker = TezzeretWorker(remote_urza, _config(tmp_path))
    while worker.run_once():
        pass
    server = grpc_server([host(TEZZERET_SERVICE.bind(TezzeretService(worker.state)))], service_name="tezzeret")

    with TezzeretClient(ClientConfig(address=server.address)) as client:
        status = client.get_worker_status(tezzeret_pb2.GetWorkerStatusRequest())
        first = client.list_worker_jobs(tezzeret_pb2.ListWorkerJobsRequest(page_size=1))
        second = client.list_worker_jobs(
            tezzeret_pb2.ListWorkerJobsRequest(page_size=1, page_token=first.next_page_token)
        )
        with pytest.raises(InvalidArgument) as bad:
            client.list_worker_jobs(tezzeret_pb2.ListWorkerJobsRequest(page_token="not-a-token"))

    stored = blueprint(hub, blueprint_id)
    assert stored.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_COMPILED
    for kernel in stored.kernels:
        data, _ = download_kernel_bytes(remote_urza, kernel.kernel_id)
        assert load_kernel_module(data, kernel.pipeline) is not None
    assert (status.worker_id, status.jobs_succeeded, status.attempts_failed) == ("tezzeret-rpc", 2, 0)
    assert status.toolchain_hash == worker.toolchain
    assert second.next_page_token == ""
    assert {job.pipeline for job in [*first.jobs, *second.jobs]} == {FAST, STANDARD}
    assert bad.value.reason == "INVALID_PAGE_TOKEN"


def test_a_lease_lost_over_the_wire_is_recognised_and_the_job_is_redone(
    hub: UrzaHub, remote_urza: UrzaClient, clock: ManualClock, tmp_path: Path
) -> None:
    blueprint_id = submit(hub, mlp_ir(), FAST)
    config = _config(tmp_path, lease_seconds=10)
    late = TezzeretWorker(remote_urza, config, compiler=StubCompiler(before=lambda: clock.advance(60)))

    assert late.run_once()
    assert "lease lost" in late.state.jobs_newest_first()[0].last_error
    late.close()

    prompt = TezzeretWorker(remote_urza, config, compiler=StubCompiler())
    while prompt.run_once():
        pass
    (job,) = blueprint(hub, blueprint_id).compile_jobs
    assert (job.status, job.attempts) == (JOB.COMPILE_JOB_STATUS_SUCCEEDED, 2)


def test_a_failed_compile_reaches_urza_with_the_compilers_message(
    hub: UrzaHub, remote_urza: UrzaClient, tmp_path: Path
) -> None:
    blueprint_id = submit(hub, mlp_ir(), STANDARD)
    worker = TezzeretWorker(remote_urza, _config(tmp_path, numerics_tolerance=-1.0))
    while worker.run_once():
        pass

    stored = blueprint(hub, blueprint_id)
    assert stored.blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_FAILED
    assert "numerics check" in stored.blueprint.failure_reason
    assert stored.compile_jobs[0].attempts == 3
