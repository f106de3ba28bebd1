"""SimicService on a SQLite file: each report stored once, paged newest first, policy rpcs not built yet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from esper.errors import FailedPrecondition, InvalidArgument
from esper.leyline.v1 import control_pb2, lifecycle_pb2, simic_pb2
from esper.simic.config import SimicConfig
from esper.simic.db import SimicDatabase
from esper.simic.service import SimicService
from tests.support.field_reports import field_report, field_reports

Record = simic_pb2.RecordFieldReportsRequest
List = simic_pb2.ListFieldReportsRequest


@pytest.fixture
def open_simic(tmp_path: Path) -> Iterator[Callable[..., SimicService]]:
    opened: list[SimicService] = []

    def open_(**overrides: object) -> SimicService:
        simic = SimicService.open(SimicConfig(data_dir=str(tmp_path / "simic"), **overrides))  # type: ignore[arg-type]
        opened.append(simic)
        return simic

    yield open_
    for simic in opened:
        simic.close()


@pytest.fixture
def simic(open_simic: Callable[..., SimicService]) -> SimicService:
    return open_simic()


def _ids(reports: list[control_pb2.FieldReport]) -> list[str]:
    return [report.report_id for report in reports]


def _all_pages(simic: SimicService, page_size: int, run_id: str = "") -> list[control_pb2.FieldReport]:
    reports: list[control_pb2.FieldReport] = []
    token = ""
    while True:
        page = simic.list_field_reports(List(page_size=page_size, page_token=token, run_id=run_id))
        assert len(page.reports) <= page_size
        reports.extend(page.reports)
        token = page.next_page_token
        if not token:
            return reports


def test_duplicates_by_report_id_are_counted_not_stored(simic: SimicService) -> None:
    first = simic.record_field_reports(Record(reports=field_reports(5)))
    assert (first.accepted_count, first.duplicate_count) == (5, 0)

    repeated = field_reports(3, start=3)  # reports 3 and 4 again, 5 new
    in_one_request = [field_report(9), field_report(9)]
    second = simic.record_field_reports(Record(reports=[*repeated, *in_one_request]))
    assert (second.accepted_count, second.duplicate_count) == (2, 3)

    listed = _all_pages(simic, page_size=100)
    assert sorted(_ids(listed)) == sorted({*_ids(field_reports(6)), "report-run-1-0009"})
    status = simic.status()
    assert (status.stored, status.accepted, status.duplicates) == (7, 7, 3)


def test_a_duplicate_is_dropped_across_a_restart(open_simic: Callable[..., SimicService]) -> None:
    before = open_simic()
    before.record_field_reports(Record(reports=field_reports(4)))
    before.close()

    after = open_simic()
    again = after.record_field_reports(Record(reports=field_reports(5)))
    assert (again.accepted_count, again.duplicate_count) == (1, 4)
    assert after.list_field_reports(List()).total_size == 5


def test_a_stored_report_comes_back_exactly_as_recorded(simic: SimicService) -> None:
    report = field_report(11)
    report.kernel_report.kernel_id = "kernel-2-cpu-fast"
    report.kernel_report.passed = True
    simic.record_field_reports(Record(reports=[report]))
    [stored] = simic.list_field_reports(List()).reports
    assert stored == report


def test_pages_run_newest_first_and_cover_every_report_once(simic: SimicService) -> None:
    for batch in range(3):
        simic.record_field_reports(Record(reports=field_reports(4, start=4 * batch)))
    first = simic.list_field_reports(List(page_size=5))
    assert _ids(list(first.reports)) == [f"report-run-1-{i:04d}" for i in (11, 10, 9, 8, 7)]
    assert first.total_size == 12 and first.next_page_token
    everything = _all_pages(simic, page_size=5)
    assert _ids(everything) == [f"report-run-1-{i:04d}" for i in reversed(range(12))]


def test_reports_stored_while_paging_neither_shift_nor_repeat_the_pages(simic: SimicService) -> None:
    simic.record_field_reports(Record(reports=field_reports(6)))
    first = simic.list_field_reports(List(page_size=3))
    simic.record_field_reports(Record(reports=field_reports(2, start=100)))
    second = simic.list_field_reports(List(page_size=3, page_token=first.next_page_token))
    assert _ids(list(first.reports)) + _ids(list(second.reports)) == [
        f"report-run-1-{i:04d}" for i in reversed(range(6))
    ]
    assert second.next_page_token == ""
    assert second.total_size == 8


def test_the_run_filter_selects_one_run_and_counts_it(simic: SimicService) -> None:
    simic.record_field_reports(Record(reports=field_reports(3, run_id="run-a")))
    simic.record_field_reports(Record(reports=field_reports(5, run_id="run-b")))
    simic.record_field_reports(Record(reports=field_reports(2, run_id="run-a", start=3)))
    run_a = _all_pages(simic, page_size=2, run_id="run-a")
    assert _ids(run_a) == [f"report-run-a-{i:04d}" for i in reversed(range(5))]
    assert simic.list_field_reports(List(run_id="run-b")).total_size == 5
    assert simic.list_field_reports(List(run_id="run-c")).total_size == 0
    assert simic.list_field_reports(List()).total_size == 10


def test_a_page_token_only_pages_its_own_run(simic: SimicService) -> None:
    simic.record_field_reports(Record(reports=field_reports(4, run_id="run-a")))
    page = simic.list_field_reports(List(page_size=2, run_id="run-a"))
    with pytest.raises(InvalidArgument) as raised:
        simic.list_field_reports(List(page_size=2, run_id="run-b", page_token=page.next_page_token))
    assert raised.value.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in raised.value.violations] == ["page_token"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.ClearField("report_id"), "reports[1].report_id"),
        (lambda r: setattr(r, "post_metric", 1.5), "reports[1].post_metric"),
        (lambda r: setattr(r, "pre_metric", float("nan")), "reports[1].pre_metric"),
        (lambda r: setattr(r, "run_id", "r" * 257), "reports[1].run_id"),
        (lambda r: setattr(r, "outcome", 99), "reports[1].outcome"),
    ],
)
def test_a_bad_report_refuses_the_whole_request(
    simic: SimicService, change: Callable[[control_pb2.FieldReport], None], field: str
) -> None:
    reports = field_reports(3)
    change(reports[1])
    with pytest.raises(InvalidArgument) as raised:
        simic.record_field_reports(Record(reports=reports))
    assert [v.field for v in raised.value.violations] == [field]
    assert simic.list_field_reports(List()).total_size == 0


def test_a_report_of_a_lower_is_better_metric_keeps_its_own_units(simic: SimicService) -> None:
    reports = field_reports(2)
    for report in reports:
        report.metric_direction = lifecycle_pb2.METRIC_DIRECTION_LOWER_IS_BETTER
        report.pre_metric, report.post_metric = 2.41, 2.27  # bits per character
    simic.record_field_reports(Record(reports=reports))
    assert simic.list_field_reports(List()).total_size == 2
    reports[0].post_metric = float("inf")
    with pytest.raises(InvalidArgument) as raised:
        simic.record_field_reports(Record(reports=[reports[0]]))
    assert [v.field for v in raised.value.violations] == ["reports[0].post_metric"]


def test_request_limits_are_enforced(open_simic: Callable[..., SimicService]) -> None:
    simic = open_simic(max_reports_per_request=2)
    with pytest.raises(InvalidArgument) as too_many:
        simic.record_field_reports(Record(reports=field_reports(3)))
    assert [v.field for v in too_many.value.violations] == ["reports"]
    with pytest.raises(InvalidArgument) as page_size:
        simic.list_field_reports(List(page_size=1001))
    assert [v.field for v in page_size.value.violations] == ["page_size"]


def test_policy_requests_are_still_validated_first(simic: SimicService) -> None:
    with pytest.raises(InvalidArgument) as raised:
        simic.get_policy(simic_pb2.GetPolicyRequest())
    assert [v.field for v in raised.value.violations] == ["policy_id"]


def test_a_database_with_another_schema_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'simic.db'}"
    SimicDatabase.open(url).close()
    database = SimicDatabase(url)
    with database.write() as conn:
        conn.execute(text("UPDATE schema_meta SET version = 99 WHERE component = 'simic'"))
    database.close()
    with pytest.raises(FailedPrecondition) as raised:
        SimicDatabase.open(url)
    assert raised.value.reason == "SCHEMA_VERSION_UNSUPPORTED"
