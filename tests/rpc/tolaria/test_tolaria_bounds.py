"""What a caller cannot make a Tolaria server do: unbounded waiting runs, streams, or runs kept forever."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from esper.clients import TolariaClient
from esper.clients.base import ClientConfig
from esper.errors import NotFound, ResourceExhausted
from esper.leyline.v1 import run_pb2, tolaria_pb2
from esper.leyline.v1.services import TOLARIA_SERVICE
from esper.mesh.hosting import host
from esper.tolaria.runs import RunManager, RunManagerConfig
from tests.support.servers import ServerFactory

LONG = 10_000
Start = Callable[..., TolariaClient]


@pytest.fixture
def start(grpc_server: ServerFactory, tmp_path: Path) -> Iterator[Start]:
    managers: list[RunManager] = []
    clients: list[TolariaClient] = []

    def start_with(**limits: Any) -> TolariaClient:
        manager = RunManager(RunManagerConfig(runs_dir=tmp_path / "runs", assets_root=tmp_path, **limits))
        managers.append(manager)
        server = grpc_server([host(TOLARIA_SERVICE.bind(manager))], service_name="tolaria")
        # One attempt: a RESOURCE_EXHAUSTED with RetryInfo must reach the test, not be retried.
        clients.append(TolariaClient(ClientConfig(address=server.address, deadline_seconds=30.0, max_attempts=1)))
        return clients[-1]

    yield start_with
    for client in clients:
        client.close()
    for manager in managers:
        manager.close()


def _create(client: TolariaClient, run_id: str, epochs: int = 1) -> run_pb2.Run:
    assets = {"assets": {"data_dir": "assets", "template_ids": ["conv3x3_relu"], "wait_for_kernels": False}}
    config = run_pb2.RunConfig(dataset="digits", epochs=epochs, static=True, config_yaml=yaml.safe_dump(assets))
    return client.create_run(tolaria_pb2.CreateRunRequest(run_id=run_id, config=config)).run


def _cancel_all(client: TolariaClient, *run_ids: str) -> None:
    for run_id in run_ids:
        client.cancel_run(tolaria_pb2.CancelRunRequest(run_id=run_id))


def test_waiting_runs_are_capped(start: Start) -> None:
    client = start(max_concurrent_runs=1, max_pending_runs=1)
    _create(client, "running", LONG)
    _create(client, "waiting", LONG)
    with pytest.raises(ResourceExhausted) as refused:
        _create(client, "one-too-many", LONG)
    assert refused.value.reason == "RESOURCE_EXHAUSTED" and refused.value.retry_after_seconds
    assert {run.run_id for run in client.list_runs(tolaria_pb2.ListRunsRequest()).runs} == {"running", "waiting"}
    _cancel_all(client, "running", "waiting")


def test_event_streams_are_capped_per_run_and_given_back_when_closed(start: Start) -> None:
    client = start(max_streams_per_run=2, max_streams=3)
    _create(client, "watched", LONG)
    request = tolaria_pb2.StreamRunEventsRequest(run_id="watched")
    first, second = client.stream_run_events(request, timeout=60), client.stream_run_events(request, timeout=60)
    next(iter(first)), next(iter(second))  # both are open and waiting
    with pytest.raises(ResourceExhausted, match="2 event streams open"):
        next(iter(client.stream_run_events(request, timeout=60)))
    first.close()
    again = client.stream_run_events(request, timeout=60)
    assert next(iter(again)).event.run_id == "watched"
    again.close()
    second.close()
    _cancel_all(client, "watched")


def test_finished_runs_are_forgotten_after_their_retention(start: Start) -> None:
    client = start(retention_seconds=1e-6)
    run = _create(client, "short")
    events = list(client.stream_run_events(tolaria_pb2.StreamRunEventsRequest(run_id="short"), timeout=120))
    assert events[-1].event.status_change == run_pb2.RUN_STATUS_SUCCEEDED
    with pytest.raises(NotFound):
        client.get_run(tolaria_pb2.GetRunRequest(run_id="short"))
    assert Path(run.out_dir, "summary.json").is_file(), "the run folder stays"


def test_only_the_newest_finished_runs_are_kept(start: Start) -> None:
    client = start(max_finished_runs=1)
    for run_id in ("first", "second"):
        _create(client, run_id)
        list(client.stream_run_events(tolaria_pb2.StreamRunEventsRequest(run_id=run_id), timeout=120))
    assert [run.run_id for run in client.list_runs(tolaria_pb2.ListRunsRequest()).runs] == ["second"]
