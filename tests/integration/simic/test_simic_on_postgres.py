"""Simic on a real PostgreSQL: two Simic processes sharing one database store each report once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from esper.leyline.v1 import simic_pb2
from esper.simic.config import SimicConfig
from esper.simic.service import SimicService
from tests.support.field_reports import field_reports

pytestmark = pytest.mark.integration


@pytest.fixture
def two_simics(postgres_url: str) -> Iterator[tuple[SimicService, SimicService]]:
    config = SimicConfig(database_url=postgres_url)
    first, second = SimicService.open(config), SimicService.open(config)
    yield first, second
    first.close()
    second.close()


def test_concurrent_writers_store_each_report_once(two_simics: tuple[SimicService, SimicService]) -> None:
    reports = field_reports(40, run_id="run-pg")
    answers: list[simic_pb2.RecordFieldReportsResponse] = []
    lock = threading.Lock()

    def record(simic: SimicService) -> None:
        for start in range(0, 40, 8):
            answer = simic.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=reports[start : start + 8]))
            with lock:
                answers.append(answer)

    writers = [threading.Thread(target=record, args=(simic,)) for simic in two_simics]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)

    assert sum(a.accepted_count for a in answers) == 40
    assert sum(a.duplicate_count for a in answers) == 40
    first, second = two_simics
    page = second.list_field_reports(simic_pb2.ListFieldReportsRequest(page_size=25, run_id="run-pg"))
    rest = first.list_field_reports(
        simic_pb2.ListFieldReportsRequest(page_size=25, run_id="run-pg", page_token=page.next_page_token)
    )
    listed = [r.report_id for r in [*page.reports, *rest.reports]]
    assert sorted(listed) == sorted(r.report_id for r in reports) and len(listed) == 40
    assert page.total_size == 40 and rest.next_page_token == ""
