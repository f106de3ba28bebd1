"""`esper serve karn --nats URL`: Karn's durable "karn" consumer takes the same field reports as Simic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esper.cli.main import build_parser
from esper.karn.catalog import TemplateCatalog
from esper.karn.config import KarnConfig
from esper.karn.service import KarnService
from esper.oona.config import OonaConfig
from esper.oona.jetstream import JetStreamBus
from esper.oona.subjects import field_report_subject
from esper.state.samples import sample_adaptation_command
from tests.support.field_reports import field_reports
from tests.support.nats import NatsServer
from tests.support.served import RunningServed
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def karn(monkeypatch: pytest.MonkeyPatch) -> KarnService:
    """The KarnService `esper serve karn` builds (caught as it is created)."""
    service = KarnService(TemplateCatalog.default(), KarnConfig())

    def default(cls: type[KarnService], config: KarnConfig | None = None) -> KarnService:
        return service

    monkeypatch.setattr(KarnService, "default", classmethod(default))
    return service


@pytest.fixture
def served_karn(nats_server: NatsServer, karn: KarnService) -> Iterator[RunningServed]:
    args = build_parser().parse_args(["serve", "karn", "--nats", nats_server.url])
    running = RunningServed(args.serve_target.build(args), "karn")
    yield running
    running.stop()


def test_karn_receives_every_field_report_once(
    nats_server: NatsServer, karn: KarnService, served_karn: RunningServed
) -> None:
    reports = [*field_reports(8, run_id="run-a"), *field_reports(4, run_id="run-b")]
    with JetStreamBus(OonaConfig(url=nats_server.url, client_name="tamiyo")) as publisher:
        publisher.publish(field_report_subject("run-a"), publisher.seal(sample_adaptation_command(), source="tamiyo"))
        for report in [*reports, *reports[:4]]:
            envelope = publisher.seal(report, source="tamiyo", idempotency_key=report.report_id)
            publisher.publish(field_report_subject(report.run_id), envelope)
        for index, report in enumerate(reports[4:6]):
            envelope = publisher.seal(report, source="tolaria", idempotency_key=f"again-{index}")
            publisher.publish(field_report_subject(report.run_id), envelope)
        assert publisher.flush(30.0)

    eventually(lambda: len(karn.field_reports()) >= len(reports), timeout=30, what="every field report")
    served_karn.stop()  # every delivery handled or abandoned: nothing more can arrive
    assert [r.report_id for r in karn.field_reports()] == [r.report_id for r in reports]
