"""NissaService over a real in-process server: alerts paged from the alert engine, run summaries
from the run board with the run's alerts, and UNIMPLEMENTED naming a part this Nissa lacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from esper.clients import NissaClient
from esper.clients.base import ClientConfig
from esper.errors import InvalidArgument, NotFound, Unimplemented
from esper.leyline.v1 import alert_pb2, nissa_pb2, run_pb2
from esper.leyline.v1.services import NISSA_SERVICE
from esper.mesh.hosting import host
from esper.nissa.config import SpanStoreConfig, database_url
from esper.nissa.service import NissaService
from esper.nissa.spans import SpanStore
from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake
from tests.support.servers import ServerFactory

FIRING = alert_pb2.ALERT_STATE_FIRING
RESOLVED = alert_pb2.ALERT_STATE_RESOLVED


def _alert(n: int, state: int = FIRING, *, started: float = 0.0, **labels: str) -> alert_pb2.Alert:
    alert = alert_pb2.Alert(alert_id=f"a{n}", name=f"rule_{n}", state=state, labels=labels)  # type: ignore[arg-type]
    if started:
        alert.start_time.CopyFrom(timestamp_pb2.Timestamp(seconds=int(started)))
    return alert


class FakeAlerts:
    """Alerts as an AlertEngine gives them: a fixed list a fixed list, newest first."""

    def __init__(self, alerts: list[alert_pb2.Alert]) -> None:
        self._alerts = alerts
        self.asked: list[int] = []

    def alerts(self, state: alert_pb2.AlertState = alert_pb2.ALERT_STATE_UNSPECIFIED) -> list[alert_pb2.Alert]:
        self.asked.append(state)
        return [a for a in self._alerts if state in (alert_pb2.ALERT_STATE_UNSPECIFIED, a.state)]


class FakeBoard:
    """Run summaries as a RunBoard gives them, for one run."""

    def summary(self, run_id: str) -> nissa_pb2.GetRunSummaryResponse:
        if run_id != "run-1":
            raise NotFound(f"no run {run_id!r}", reason="RUN_NOT_FOUND")
        return nissa_pb2.GetRunSummaryResponse(
            run_id=run_id,
            summary=run_pb2.RunSummary(epochs=4, seeds_germinated=2),
            last_epoch=4,
            alerts=[_alert(99, name="stale")],
        )


@pytest.fixture
def nissa_client(grpc_server: ServerFactory) -> Iterator[Callable[..., NissaClient]]:
    clients: list[NissaClient] = []
    stores: list[SpanStore] = []

    def start(
        board: FakeBoard | None = None,
        alerts: FakeAlerts | None = None,
        *,
        with_store: bool = True,
        run_window: Callable[[str], tuple[float, float | None] | None] | None = None,
    ) -> NissaClient:
        store = SpanStore.open(SpanStoreConfig(url=database_url(":memory:"))) if with_store else None
        registrations = [
            host(
                NISSA_SERVICE.bind(
                    NissaService(
                        store,
                        board.summary if board is not None else None,
                        alerts.alerts if alerts is not None else None,
                        run_window=run_window,
                    )
                )
            )
        ]
        if store is not None:
            stores.append(store)
            registrations.append(host(TRACE_SERVICE.bind(SpanIntake(store))))
        server = grpc_server(registrations, service_name="nissa")
        client = NissaClient(ClientConfig(address=server.address, deadline_seconds=30.0))
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for store in stores:
        store.close()


def test_list_alerts_pages_newest_first_and_filters_by_state(nissa_client: Callable[..., NissaClient]) -> None:
    source = FakeAlerts([_alert(n, FIRING if n % 2 else RESOLVED) for n in range(5, 0, -1)])
    client = nissa_client(alerts=source)
    first = client.list_alerts(nissa_pb2.ListAlertsRequest(page_size=2))
    second = client.list_alerts(nissa_pb2.ListAlertsRequest(page_size=2, page_token=first.next_page_token))
    last = client.list_alerts(nissa_pb2.ListAlertsRequest(page_size=2, page_token=second.next_page_token))
    assert [[a.alert_id for a in page.alerts] for page in (first, second, last)] == [
        ["a5", "a4"],
        ["a3", "a2"],
        ["a1"],
    ]
    assert last.next_page_token == ""
    firing = client.list_alerts(nissa_pb2.ListAlertsRequest(state=FIRING))
    assert [a.alert_id for a in firing.alerts] == ["a5", "a3", "a1"]
    assert FIRING in source.asked


def test_a_page_token_of_another_state_filter_is_refused(nissa_client: Callable[..., NissaClient]) -> None:
    client = nissa_client(alerts=FakeAlerts([_alert(n) for n in range(3)]))
    token = client.list_alerts(nissa_pb2.ListAlertsRequest(page_size=1)).next_page_token
    with pytest.raises(InvalidArgument) as raised:
        client.list_alerts(nissa_pb2.ListAlertsRequest(page_size=1, page_token=token, state=FIRING))
    assert raised.value.reason == "INVALID_PAGE_TOKEN"


def test_a_run_summary_comes_from_the_board_with_the_runs_alerts(nissa_client: Callable[..., NissaClient]) -> None:
    alerts = FakeAlerts(
        [
            _alert(1, run_id="run-1"),
            _alert(2, run_id="run-2"),
            _alert(3, RESOLVED, started=1500.0),
            _alert(4, started=500.0),
            _alert(5, RESOLVED, run_id="run-1"),
        ]
    )
    client = nissa_client(FakeBoard(), alerts, run_window=lambda run_id: (1000.0, None))
    answer = client.get_run_summary(nissa_pb2.GetRunSummaryRequest(run_id="run-1"))
    assert (answer.run_id, answer.last_epoch, answer.summary.seeds_germinated) == ("run-1", 4, 2)
    # Labelled with the run, or unlabelled and started while it ran; the board's own list is replaced.
    assert [a.alert_id for a in answer.alerts] == ["a1", "a3", "a5"]


def test_an_unknown_run_is_not_found(nissa_client: Callable[..., NissaClient]) -> None:
    with pytest.raises(NotFound) as raised:
        nissa_client(FakeBoard(), FakeAlerts([])).get_run_summary(nissa_pb2.GetRunSummaryRequest(run_id="nope"))
    assert raised.value.reason == "RUN_NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "request_message", "missing"),
    [
        ("list_alerts", nissa_pb2.ListAlertsRequest(page_size=10), "alert engine"),
        ("get_run_summary", nissa_pb2.GetRunSummaryRequest(run_id="run-1"), "run board"),
        ("find_traces", nissa_pb2.FindTracesRequest(command_id="cmd-1"), "span store"),
    ],
)
def test_an_rpc_whose_part_is_missing_is_unimplemented_naming_it(
    nissa_client: Callable[..., NissaClient], method: str, request_message: object, missing: str
) -> None:
    client = nissa_client(with_store=False)
    with pytest.raises(Unimplemented) as raised:
        getattr(client, method)(request_message)
    assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED.name
    assert missing in raised.value.message


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("get_run_summary", nissa_pb2.GetRunSummaryRequest(), "run_id"),
        ("find_traces", nissa_pb2.FindTracesRequest(limit=5), "run_id"),
        ("find_traces", nissa_pb2.FindTracesRequest(run_id="run-1", limit=5000), "limit"),
        ("find_traces", nissa_pb2.FindTracesRequest(seed_id="s" * 300), "seed_id"),
        ("list_alerts", nissa_pb2.ListAlertsRequest(page_size=-1), "page_size"),
    ],
)
def test_a_bad_request_is_invalid_naming_the_field(
    nissa_client: Callable[..., NissaClient], method: str, request_message: object, field: str
) -> None:
    client = nissa_client(FakeBoard(), FakeAlerts([]))
    with pytest.raises(InvalidArgument) as raised:
        getattr(client, method)(request_message)
    assert [v.field for v in raised.value.violations] == [field]


def test_health_and_reflection_name_both_services(grpc_server: ServerFactory) -> None:
    store = SpanStore.open(SpanStoreConfig(url=database_url(":memory:")))
    server = grpc_server(
        [host(NISSA_SERVICE.bind(NissaService(store))), host(TRACE_SERVICE.bind(SpanIntake(store)))],
        service_name="nissa",
    )
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in (NISSA_SERVICE.full_name, TRACE_SERVICE.full_name):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        [response] = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
        )
        services = {service.name for service in response.list_services_response.service}
    assert {NISSA_SERVICE.full_name, TRACE_SERVICE.full_name} <= services
    store.close()
