"""SimicService over a real in-process server, through the SimicClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from esper.clients import SimicClient
from esper.clients.base import ClientConfig
from esper.errors import InvalidArgument, Unimplemented
from esper.leyline.v1 import simic_pb2
from esper.leyline.v1.services import SIMIC_SERVICE
from esper.mesh.hosting import host
from esper.simic.config import SimicConfig
from esper.simic.service import SimicService
from tests.support.field_reports import field_reports
from tests.support.servers import ServerFactory, ServerThread


@pytest.fixture
def server(grpc_server: ServerFactory, tmp_path: Path) -> Iterator[ServerThread]:
    simic = SimicService.open(SimicConfig(data_dir=str(tmp_path)))
    yield grpc_server([host(SIMIC_SERVICE.bind(simic))], service_name="simic")
    simic.close()


@pytest.fixture
def client(server: ServerThread) -> Iterator[SimicClient]:
    with SimicClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


def test_reports_are_recorded_once_and_listed_newest_first(client: SimicClient) -> None:
    recorded = client.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=field_reports(5)))
    assert (recorded.accepted_count, recorded.duplicate_count) == (5, 0)
    again = client.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=field_reports(6)))
    assert (again.accepted_count, again.duplicate_count) == (1, 5)

    page = client.list_field_reports(simic_pb2.ListFieldReportsRequest(page_size=4))
    assert [r.report_id for r in page.reports] == [f"report-run-1-{i:04d}" for i in (5, 4, 3, 2)]
    assert page.total_size == 6
    rest = client.list_field_reports(simic_pb2.ListFieldReportsRequest(page_size=4, page_token=page.next_page_token))
    assert [r.report_id for r in rest.reports] == ["report-run-1-0001", "report-run-1-0000"]
    assert rest.next_page_token == ""


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("train_policy", simic_pb2.TrainPolicyRequest(max_steps=10)),
        ("get_policy", simic_pb2.GetPolicyRequest(policy_id="policy-1")),
        ("list_policies", simic_pb2.ListPoliciesRequest()),
    ],
)
def test_policy_rpcs_answer_unimplemented_with_its_reason(
    client: SimicClient, method: str, request_message: object
) -> None:
    with pytest.raises(Unimplemented) as raised:
        getattr(client, method)(request_message)
    assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED.name
    assert raised.value.reason == "UNIMPLEMENTED"
    assert "Simic's own issue" in raised.value.message


def test_a_bad_request_names_its_field(client: SimicClient) -> None:
    reports = field_reports(2)
    reports[1].report_id = ""
    with pytest.raises(InvalidArgument) as raised:
        client.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=reports))
    assert raised.value.reason == "INVALID_FIELD"
    assert [v.field for v in raised.value.violations] == ["reports[1].report_id"]


def test_health_reports_simic_serving(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SIMIC_SERVICE.full_name):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
