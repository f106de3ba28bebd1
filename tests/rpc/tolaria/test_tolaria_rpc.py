"""TolariaService (and the KasminaService of its live runs) over a real in-process server.

Runs train for real, embedded (in-process asset pipeline), on the digits set with a
few epochs: a digits epoch takes tens of milliseconds. A long run (many epochs) is
what a test uses when it needs a run to stay RUNNING until it cancels it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from esper.clients import KasminaClient, TolariaClient
from esper.clients.base import ClientConfig
from esper.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from esper.leyline.v1 import kasmina_pb2, run_pb2, tolaria_pb2
from esper.leyline.v1.services import KASMINA_SERVICE, TOLARIA_SERVICE
from esper.mesh.hosting import host
from esper.tolaria.config import RunManagerConfig
from esper.tolaria.runs import RunManager
from tests.support.servers import ServerFactory

LONG = 10_000  # epochs: a run that stays RUNNING until it is cancelled
STREAM_SECONDS = 120.0


class Tolaria:
    def __init__(self, client: TolariaClient, kasmina: KasminaClient, runs_dir: Path, tmp: Path) -> None:
        self.client = client
        self.kasmina = kasmina
        self.runs_dir = runs_dir
        self.tmp = tmp

    def create(self, run_id: str = "", **options: object) -> run_pb2.Run:
        fields: dict[str, object] = {"dataset": "digits", "epochs": 2, "config_yaml": _yaml(self.tmp), **options}
        config = run_pb2.RunConfig(**fields)  # type: ignore[arg-type]
        return self.client.create_run(tolaria_pb2.CreateRunRequest(config=config, run_id=run_id)).run

    def events(self, run_id: str, from_sequence: int = 0) -> list[run_pb2.RunEvent]:
        request = tolaria_pb2.StreamRunEventsRequest(run_id=run_id, from_sequence=from_sequence)
        return [response.event for response in self.client.stream_run_events(request, timeout=STREAM_SECONDS)]

    def finished(self, run_id: str) -> run_pb2.Run:
        self.events(run_id)
        return self.client.get_run(tolaria_pb2.GetRunRequest(run_id=run_id)).run


def _yaml(tmp: Path) -> str:
    # One template, compiled in the background: the runs do not wait for kernels.
    return yaml.safe_dump(
        {"assets": {"data_dir": str(tmp / "assets"), "template_ids": ["conv3x3_relu"], "wait_for_kernels": False}}
    )


@pytest.fixture
def tolaria(grpc_server: ServerFactory, tmp_path: Path) -> Iterator[Tolaria]:
    manager = RunManager(
        RunManagerConfig(runs_dir=tmp_path / "runs", max_concurrent_runs=2, data_root=tmp_path, assets_root=tmp_path)
    )
    server = grpc_server(
        [host(TOLARIA_SERVICE.bind(manager)), host(KASMINA_SERVICE.bind(manager.kasmina))], service_name="tolaria"
    )
    config = ClientConfig(address=server.address, deadline_seconds=30.0)
    with TolariaClient(config) as client, KasminaClient(config) as kasmina:
        yield Tolaria(client, kasmina, tmp_path / "runs", tmp_path)
        manager.close()


def _kinds(events: list[run_pb2.RunEvent]) -> list[str]:
    return [str(event.WhichOneof("payload")) for event in events]


def test_a_run_trains_to_success_with_its_events_summary_and_folder(tolaria: Tolaria) -> None:
    created = tolaria.create(seed=3)
    assert created.status == run_pb2.RUN_STATUS_PENDING and created.HasField("create_time")
    assert Path(created.out_dir) == (tolaria.runs_dir / created.run_id).resolve()
    events = tolaria.events(created.run_id)
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert all(event.run_id == created.run_id for event in events)
    kinds = _kinds(events)
    assert kinds.count("epoch_completed") == 2
    statuses = [event.status_change for event in events if event.WhichOneof("payload") == "status_change"]
    assert statuses == [run_pb2.RUN_STATUS_RUNNING, run_pb2.RUN_STATUS_SUCCEEDED]
    assert kinds[-1] == "status_change"
    run = tolaria.client.get_run(tolaria_pb2.GetRunRequest(run_id=created.run_id)).run
    assert run.status == run_pb2.RUN_STATUS_SUCCEEDED and run.current_epoch == 2
    assert run.config.seed == 3 and run.config.epochs == 2 and run.config.dataset == "digits"
    assert run.summary.epochs == 2 and 0.0 < run.summary.final_test_accuracy <= 1.0
    assert run.summary.params_initial > 0 and run.summary.isolation_violations == 0
    assert run.HasField("start_time") and run.HasField("end_time") and not run.error_message
    folder = Path(run.out_dir)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["final_test_accuracy"] == pytest.approx(run.summary.final_test_accuracy)
    for name in ("metrics.jsonl", "events.jsonl", "model.pt", "report.png"):
        assert (folder / name).is_file(), name


def test_a_stream_replays_from_any_sequence(tolaria: Tolaria) -> None:
    run = tolaria.create(static=True)
    everything = tolaria.events(run.run_id)
    tail = tolaria.events(run.run_id, from_sequence=3)
    assert [event.sequence for event in tail] == [event.sequence for event in everything[2:]]
    assert tail == everything[2:]
    assert tolaria.events(run.run_id, from_sequence=len(everything) + 5) == []


def test_create_is_idempotent_by_run_id(tolaria: Tolaria) -> None:
    first = tolaria.create("mine-1", static=True)
    again = tolaria.create("mine-1", static=True)
    assert again.run_id == "mine-1" and again.create_time == first.create_time
    with pytest.raises(AlreadyExists) as clash:
        tolaria.create("mine-1", static=True, epochs=3)
    assert clash.value.reason == "ALREADY_EXISTS"
    tolaria.finished("mine-1")
    listed = tolaria.client.list_runs(tolaria_pb2.ListRunsRequest()).runs
    assert [run.run_id for run in listed] == ["mine-1"]


def test_list_runs_pages_newest_first_and_filters_by_status(tolaria: Tolaria) -> None:
    ids = [tolaria.create(f"r{i}", static=True).run_id for i in range(3)]
    for run_id in ids:
        tolaria.finished(run_id)
    long = tolaria.create("long", epochs=LONG, static=True)
    seen: list[str] = []
    token = ""
    while True:
        page = tolaria.client.list_runs(tolaria_pb2.ListRunsRequest(page_size=2, page_token=token))
        seen.extend(run.run_id for run in page.runs)
        token = page.next_page_token
        if not token:
            break
    assert seen == ["long", "r2", "r1", "r0"]
    done = tolaria.client.list_runs(tolaria_pb2.ListRunsRequest(status=run_pb2.RUN_STATUS_SUCCEEDED)).runs
    assert [run.run_id for run in done] == ["r2", "r1", "r0"]
    with pytest.raises(InvalidArgument) as wrong_filter:
        tolaria.client.list_runs(
            tolaria_pb2.ListRunsRequest(page_size=2, page_token=_first_token(tolaria), status=run_pb2.RUN_STATUS_FAILED)
        )
    assert wrong_filter.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument) as bad_size:
        tolaria.client.list_runs(tolaria_pb2.ListRunsRequest(page_size=1001))
    assert bad_size.value.violations[0].field == "page_size"
    tolaria.client.cancel_run(tolaria_pb2.CancelRunRequest(run_id=long.run_id))
    assert tolaria.finished(long.run_id).status == run_pb2.RUN_STATUS_CANCELLED


def _first_token(tolaria: Tolaria) -> str:
    return tolaria.client.list_runs(tolaria_pb2.ListRunsRequest(page_size=2)).next_page_token


@pytest.mark.parametrize(
    ("options", "run_id", "field", "says"),
    [
        ({"epochs": 20_000}, "", "config.epochs", "[1, 10000]"),
        ({"dataset": "cifar"}, "", "config.dataset", "unknown dataset"),
        ({"dataset": "npz:no/such/file.npz"}, "", "config.dataset", "no such file"),
        ({"dataset": "npz:/etc/passwd"}, "", "config.dataset", "outside"),
        ({"out_dir": "../escape"}, "", "config.out_dir", "outside"),
        ({"out_dir": "/tmp/anywhere"}, "", "config.out_dir", "outside"),
        ({"config_yaml": "run:\n  out: /etc/esper\n"}, "", "config.config_yaml", "outside"),
        ({"host_width": 5000}, "", "config.host_width", "4096"),
        ({"config_yaml": "run:\n  epoch: 3\n"}, "", "config.config_yaml", "run.epoch"),
        ({"config_yaml": "tamiyo:\n  patience: -1\n"}, "", "config.config_yaml", "tamiyo.patience"),
        ({"config_yaml": "run: [1, 2]\n"}, "", "config.config_yaml", "run"),
        ({}, "bad id!", "run_id", "run id"),
    ],
)
def test_bad_options_are_refused_naming_the_field_and_start_nothing(
    tolaria: Tolaria, options: dict[str, object], run_id: str, field: str, says: str
) -> None:
    config = run_pb2.RunConfig(dataset="digits", epochs=2)
    for name, value in options.items():
        setattr(config, name, value)
    with pytest.raises(InvalidArgument) as refused:
        tolaria.client.create_run(tolaria_pb2.CreateRunRequest(config=config, run_id=run_id))
    assert refused.value.reason == "INVALID_FIELD"
    assert refused.value.violations[0].field == field
    assert says in refused.value.violations[0].description
    assert not tolaria.client.list_runs(tolaria_pb2.ListRunsRequest()).runs


def test_a_request_without_options_is_refused(tolaria: Tolaria) -> None:
    with pytest.raises(InvalidArgument) as refused:
        tolaria.client.create_run(tolaria_pb2.CreateRunRequest())
    assert refused.value.violations[0].field == "config"


def test_unknown_runs_are_not_found(tolaria: Tolaria) -> None:
    calls = [
        lambda: tolaria.client.get_run(tolaria_pb2.GetRunRequest(run_id="nope")),
        lambda: tolaria.client.cancel_run(tolaria_pb2.CancelRunRequest(run_id="nope")),
        lambda: tolaria.events("nope"),
        lambda: tolaria.kasmina.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id="nope")),
    ]
    for call in calls:
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.reason == "RUN_NOT_FOUND"
    with pytest.raises(InvalidArgument) as empty:
        tolaria.client.get_run(tolaria_pb2.GetRunRequest())
    assert empty.value.violations[0].field == "run_id"


def test_a_live_run_serves_its_seeds_and_cancels_at_the_next_step(tolaria: Tolaria) -> None:
    run = tolaria.create("live", epochs=LONG)
    stream = tolaria.client.stream_run_events(
        tolaria_pb2.StreamRunEventsRequest(run_id=run.run_id), timeout=STREAM_SECONDS
    )
    for response in stream:
        if response.event.WhichOneof("payload") == "epoch_completed":
            break
    seeds = tolaria.kasmina.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id="live")).seeds
    assert len(seeds) >= 1 and all(seed.descriptor.seed_id for seed in seeds)
    telemetry = tolaria.kasmina.stream_telemetry(kasmina_pb2.StreamTelemetryRequest(run_id="live"), timeout=60.0)
    first = next(iter(telemetry)).telemetry
    assert first.run_id == "live" and first.seed_id in {seed.descriptor.seed_id for seed in seeds}
    telemetry.close()
    assert tolaria.client.get_run(tolaria_pb2.GetRunRequest(run_id="live")).run.status == run_pb2.RUN_STATUS_RUNNING
    tolaria.client.cancel_run(tolaria_pb2.CancelRunRequest(run_id="live"))
    rest = [response.event for response in stream]
    assert rest[-1].status_change == run_pb2.RUN_STATUS_CANCELLED
    ended = tolaria.client.get_run(tolaria_pb2.GetRunRequest(run_id="live")).run
    assert ended.status == run_pb2.RUN_STATUS_CANCELLED and 1 <= ended.summary.epochs < LONG
    assert Path(ended.out_dir, "summary.json").is_file()
    with pytest.raises(NotFound) as gone:
        tolaria.kasmina.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id="live"))
    assert gone.value.reason == "RUN_NOT_FOUND"
    # Cancelling a finished run changes nothing.
    again = tolaria.client.cancel_run(tolaria_pb2.CancelRunRequest(run_id="live")).run
    assert again.status == run_pb2.RUN_STATUS_CANCELLED and again.end_time == ended.end_time


def test_a_run_whose_data_cannot_load_fails_with_the_reason(tolaria: Tolaria) -> None:
    broken = tolaria.tmp / "broken.npz"
    broken.write_bytes(b"not an npz file")
    run = tolaria.finished(tolaria.create(dataset=f"npz:{broken}", static=True).run_id)
    assert run.status == run_pb2.RUN_STATUS_FAILED
    assert run.error_message and not run.HasField("start_time") and run.HasField("end_time")


def test_two_live_runs_never_share_a_folder(tolaria: Tolaria) -> None:
    out = str(tolaria.runs_dir / "shared")
    tolaria.create("first", epochs=LONG, static=True, out_dir=out)
    with pytest.raises(FailedPrecondition) as busy:
        tolaria.create("second", static=True, out_dir=out)
    assert "first" in busy.value.message
    tolaria.client.cancel_run(tolaria_pb2.CancelRunRequest(run_id="first"))
    tolaria.finished("first")
    assert tolaria.finished(tolaria.create("third", static=True, out_dir=out).run_id).status == (
        run_pb2.RUN_STATUS_SUCCEEDED
    )
