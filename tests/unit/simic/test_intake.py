"""Field reports from an in-process Oona into Simic's store (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.leyline.v1 import simic_pb2
from esper.oona.config import OonaConfig
from esper.oona.memory import InProcessBus
from esper.oona.subjects import field_report_subject
from esper.simic.config import SimicConfig
from esper.simic.intake import FieldReportIntake
from esper.simic.service import SimicService
from esper.state.samples import sample_adaptation_command
from tests.support.field_reports import field_report, field_reports

SECRET = b"0123456789abcdef-simic"


@pytest.fixture
def simic(tmp_path: Path) -> Iterator[SimicService]:
    simic = SimicService.open(SimicConfig(data_dir=str(tmp_path)))
    yield simic
    simic.close()


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    with InProcessBus(OonaConfig(hmac_secret=SECRET, hmac_key_id="k1")) as bus:
        yield bus


def _stored_ids(simic: SimicService, run_id: str = "") -> list[str]:
    page = simic.list_field_reports(simic_pb2.ListFieldReportsRequest(page_size=1000, run_id=run_id))
    return sorted(report.report_id for report in page.reports)


def test_every_report_is_stored_once_whatever_the_envelopes_say(simic: SimicService, bus: InProcessBus) -> None:
    intake = FieldReportIntake(simic)
    intake.subscribe(bus)
    reports = [*field_reports(6, run_id="run-a"), *field_reports(4, run_id="run-b")]
    for report in reports:
        envelope = bus.seal(report, source="tamiyo", idempotency_key=report.report_id)
        bus.publish(field_report_subject(report.run_id), envelope)
    # Republished under new envelope keys (another publisher): only Simic's store can tell.
    for report in reports[:3]:
        bus.publish(field_report_subject(report.run_id), bus.seal(report, source="tolaria"))
    assert bus.flush(10.0)

    assert _stored_ids(simic) == sorted(r.report_id for r in reports)
    assert len(_stored_ids(simic, "run-b")) == 4
    counts = intake.counts()
    assert (counts.stored, counts.duplicates, counts.refused) == (10, 3, 0)


def test_a_message_that_is_not_a_field_report_is_refused_and_the_intake_goes_on(
    simic: SimicService, bus: InProcessBus
) -> None:
    intake = FieldReportIntake(simic)
    intake.subscribe(bus)
    subject = field_report_subject("run-a")
    bus.publish(subject, bus.seal(sample_adaptation_command(), source="tamiyo"))
    invalid = field_report(1, run_id="run-a")
    invalid.post_metric = 2.0
    bus.publish(subject, bus.seal(invalid, source="tamiyo"))
    bus.publish(subject, bus.seal(field_report(2, run_id="run-a"), source="tamiyo"))
    assert bus.flush(10.0)

    assert _stored_ids(simic) == ["report-run-a-0002"]
    assert intake.counts().refused == 2
    assert bus.stats().dead_lettered_total == 0  # refused by Simic, not rejected by Oona
