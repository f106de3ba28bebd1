"""Urza on a real PostgreSQL: the core flow, concurrent claims (SKIP LOCKED), schema check."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import update

from esper.errors import FailedPrecondition, Unavailable
from esper.leyline.v1 import urza_pb2
from esper.urza.db import SCHEMA_VERSION, UrzaDatabase, schema_meta
from esper.urza.hub import UrzaHub
from tests.support.urza import FakeClock, claim, complete, make_hub, run_core_flow, sample_ir, submit

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(postgres_url: str, tmp_path: Path) -> UrzaHub:
    return make_hub(postgres_url, tmp_path / "artifacts")


def test_core_flow_on_postgres(hub: UrzaHub) -> None:
    assert hub.database.is_postgres
    run_core_flow(hub)
    hub.close()


def test_lease_lost_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    hub = make_hub(postgres_url, tmp_path / "artifacts", clock)
    submit(hub, pipelines=[1])
    first = claim(hub, "w1", lease=5)
    assert first is not None
    clock.advance(6)
    second = claim(hub, "w2")
    assert second is not None and second.attempts == 2
    with pytest.raises(FailedPrecondition) as caught:
        complete(hub, first)
    assert caught.value.reason == "LEASE_LOST"
    complete(hub, second)
    hub.close()


def test_concurrent_claims_never_hand_out_a_job_twice(postgres_url: str, tmp_path: Path) -> None:
    hubs = [make_hub(postgres_url, tmp_path / "artifacts") for _ in range(4)]
    for seed in range(10):
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
        claimed = [job_id for taken in pool.map(worker, range(8)) for job_id in taken]
    assert len(claimed) == 20
    assert len(set(claimed)) == 20
    for hub in hubs:
        hub.close()


def test_concurrent_submissions_of_one_ir_create_it_once(postgres_url: str, tmp_path: Path) -> None:
    hubs = [make_hub(postgres_url, tmp_path / "artifacts") for _ in range(6)]
    start = threading.Barrier(len(hubs))

    def create(hub: UrzaHub) -> urza_pb2.CreateBlueprintResponse:
        start.wait()
        return hub.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=sample_ir(seed=3)))

    with ThreadPoolExecutor(max_workers=len(hubs)) as pool:
        responses = list(pool.map(create, hubs))
    assert sum(response.created for response in responses) == 1
    assert len({response.blueprint.blueprint_id for response in responses}) == 1
    jobs = hubs[0].list_compile_jobs(urza_pb2.ListCompileJobsRequest()).jobs
    assert len(jobs) == 2
    for hub in hubs:
        hub.close()


def test_another_schema_version_is_refused_on_postgres(postgres_url: str) -> None:
    database = UrzaDatabase.open(postgres_url)
    with database.write() as conn:
        conn.execute(update(schema_meta).values(version=SCHEMA_VERSION + 1))
    database.close()
    with pytest.raises(FailedPrecondition) as caught:
        UrzaDatabase.open(postgres_url)
    assert caught.value.reason == "SCHEMA_VERSION_UNSUPPORTED"


def test_opening_concurrently_creates_the_schema_once(postgres_url: str) -> None:
    start = threading.Barrier(4)

    def open_database(_: int) -> int:
        start.wait()
        database = UrzaDatabase.open(postgres_url)
        with database.read() as conn:
            count = conn.execute(schema_meta.select()).all()
        database.close()
        return len(count)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(open_database, range(4))) == [1, 1, 1, 1]


def test_an_unreachable_database_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unavailable):
        UrzaDatabase.open(f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing?connect_timeout=2")
