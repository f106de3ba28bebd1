"""SimicService over a real in-process server, through the SimicClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from esper.clients import SimicClient
from esper.clients.base import ClientConfig
from esper.errors import InvalidArgument, NotFound
from esper.leyline.v1 import simic_pb2
from esper.leyline.v1.services import SIMIC_SERVICE
from esper.mesh.hosting import host
from esper.simic.config import SimicConfig, TrainingConfig
from esper.simic.service import SimicService
from tests.support.field_reports import field_reports
from tests.support.servers import ServerFactory, ServerThread


@pytest.fixture
def server(grpc_server: ServerFactory, tmp_path: Path) -> Iterator[ServerThread]:
    simic = SimicService.open(SimicConfig(data_dir=str(tmp_path), training=TrainingConfig(gate_suite="")))
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


def test_policy_rpcs_answer_over_the_wire(client: SimicClient) -> None:
    from tests.support.transitions import heuristic_transitions

    transitions = heuristic_transitions(runs=1)
    recorded = client.record_transitions(simic_pb2.RecordTransitionsRequest(transitions=transitions))
    assert recorded.accepted_count == len(transitions)
    job = client.train_policy(simic_pb2.TrainPolicyRequest(max_steps=5))
    assert job.job_id and job.status == simic_pb2.TRAINING_JOB_STATUS_QUEUED
    assert client.get_training_job(simic_pb2.GetTrainingJobRequest(job_id=job.job_id)).job.job_id == job.job_id
    assert list(client.list_policies(simic_pb2.ListPoliciesRequest()).policies) == []
    with pytest.raises(NotFound) as raised:
        client.get_policy(simic_pb2.GetPolicyRequest(policy_id="policy-1"))
    assert raised.value.code == grpc.StatusCode.NOT_FOUND.name
    assert raised.value.reason == "POLICY_NOT_FOUND"


def test_a_bad_request_names_its_field(client: SimicClient) -> None:
    reports = field_reports(2)
    reports[1].report_id = ""
    with pytest.raises(InvalidArgument) as raised:
        client.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=reports))
    assert raised.value.reason == "INVALID_FIELD"
    assert [v.field for v in raised.value.violations] == ["reports[1].report_id"]
    with pytest.raises(InvalidArgument) as raised:
        client.train_policy(simic_pb2.TrainPolicyRequest(gate_tolerance=-1.0))
    assert [v.field for v in raised.value.violations] == ["gate_tolerance"]


def test_health_reports_simic_serving(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SIMIC_SERVICE.full_name):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
