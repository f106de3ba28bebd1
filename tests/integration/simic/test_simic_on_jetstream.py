"""Simic's intake on a real nats-server: every field report at rest exactly once; bad envelopes
dead-lettered and counted while the intake goes on; NATS killed mid-stream and restarted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from esper.clients import SimicClient
from esper.clients.base import ClientConfig
from esper.leyline.v1 import bus_pb2, control_pb2, simic_pb2
from esper.oona.config import OonaConfig
from esper.oona.envelope import seal, signature
from esper.oona.jetstream import JetStreamBus
from esper.oona.subjects import field_report_subject
from esper.simic.config import SimicConfig
from esper.simic.intake import FieldReportIntake
from esper.simic.service import SimicService
from tests.support.field_reports import field_report, field_reports
from tests.support.nats import NatsServer
from tests.support.servers import EsperServeProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = b"0123456789abcdef-simic-test"
KEY_ID = "k1"
WAIT_SECONDS = 30.0


def _config(nats_server: NatsServer, name: str) -> OonaConfig:
    return OonaConfig(
        url=nats_server.url,
        client_name=name,
        hmac_secret=SECRET,
        hmac_key_id=KEY_ID,
        fetch_wait_seconds=0.2,
        reconnect_wait_seconds=0.1,
        publish_timeout_seconds=1.0,
    )


@pytest.fixture
def publisher(nats_server: NatsServer) -> Iterator[JetStreamBus]:
    with JetStreamBus(_config(nats_server, "tamiyo")) as bus:
        yield bus


@pytest.fixture
def simic(tmp_path: Path) -> Iterator[SimicService]:
    simic = SimicService.open(SimicConfig(data_dir=str(tmp_path / "simic")))
    yield simic
    simic.close()


@pytest.fixture
def simic_bus(nats_server: NatsServer) -> Iterator[JetStreamBus]:
    with JetStreamBus(_config(nats_server, "simic")) as bus:
        yield bus


def _publish(bus: JetStreamBus, report: control_pb2.FieldReport, *, key: str | None = None) -> None:
    envelope = bus.seal(report, source="tamiyo", idempotency_key=key or report.report_id)
    bus.publish(field_report_subject(report.run_id), envelope)


def _stored_ids(simic: SimicService) -> list[str]:
    page = simic.list_field_reports(simic_pb2.ListFieldReportsRequest(page_size=1000))
    return sorted(report.report_id for report in page.reports)


def test_every_report_is_stored_exactly_once(
    publisher: JetStreamBus, simic: SimicService, simic_bus: JetStreamBus
) -> None:
    intake = FieldReportIntake(simic)
    intake.subscribe(simic_bus)
    reports = [*field_reports(20, run_id="run-a"), *field_reports(10, run_id="run-b")]
    for report in reports:
        _publish(publisher, report)
    for report in reports[:5]:  # the same envelope again: JetStream drops it at publish
        _publish(publisher, report)
    for index, report in enumerate(reports[5:9]):  # the same report in a new envelope: Simic drops it
        _publish(publisher, report, key=f"republished-{index}")
    assert publisher.flush(WAIT_SECONDS)
    assert publisher.stats().publish_duplicates == 5

    eventually(lambda: intake.counts().stored + intake.counts().duplicates == 34, timeout=WAIT_SECONDS)
    assert _stored_ids(simic) == sorted(report.report_id for report in reports)
    counts = intake.counts()
    assert (counts.stored, counts.duplicates, counts.refused) == (30, 4, 0)


def _forged(report: control_pb2.FieldReport) -> dict[str, bus_pb2.BusEnvelope]:
    bad_hmac = seal(report, source="intruder", idempotency_key="bad-hmac", secret=b"another-secret-16b", key_id=KEY_ID)
    newer = seal(report, source="future", idempotency_key="newer", secret=SECRET, key_id=KEY_ID, schema_version=2)
    unknown = seal(report, source="future", idempotency_key="unknown-type", secret=SECRET, key_id=KEY_ID)
    unknown.message_type = 99  # type: ignore[assignment]
    unknown.hmac_sha256 = signature(unknown, SECRET)
    return {"BAD_SIGNATURE": bad_hmac, "SCHEMA_VERSION_UNSUPPORTED": newer, "UNKNOWN_MESSAGE_TYPE": unknown}


def test_bad_envelopes_are_dead_lettered_and_counted_and_the_intake_goes_on(
    publisher: JetStreamBus, simic: SimicService, simic_bus: JetStreamBus
) -> None:
    intake = FieldReportIntake(simic)
    intake.subscribe(simic_bus)
    _publish(publisher, field_report(0))
    for envelope in _forged(field_report(1)).values():
        publisher.publish(field_report_subject("run-1"), envelope)
    _publish(publisher, field_report(2))
    assert publisher.flush(WAIT_SECONDS)

    eventually(lambda: simic_bus.stats().dead_lettered_total == 3 and intake.counts().stored == 2, timeout=WAIT_SECONDS)
    assert _stored_ids(simic) == ["report-run-1-0000", "report-run-1-0002"]
    assert dict(simic_bus.stats().dead_lettered) == dict.fromkeys(_forged(field_report(1)), 1)
    letters = simic_bus.dead_letters()
    assert sorted(letter.reason for letter in letters) == sorted(_forged(field_report(1)))
    assert {letter.subject for letter in letters} == {field_report_subject("run-1")}


def test_nats_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
    nats_server: NatsServer,
    publisher: JetStreamBus,
    esper_serve: Callable[..., EsperServeProcess],
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "bus.secret"
    secret_file.write_bytes(SECRET)
    server = esper_serve(
        "simic",
        "--data-dir",
        str(tmp_path / "simic"),
        "--nats",
        nats_server.url,
        "--bus-secret-file",
        str(secret_file),
        "--bus-key-id",
        KEY_ID,
    )
    reports = field_reports(60, run_id="run-outage")
    for report in reports[:20]:
        _publish(publisher, report)
    assert publisher.flush(WAIT_SECONDS)

    assert nats_server.process is not None
    nats_server.process.kill()  # no clean shutdown
    nats_server.process.wait()
    for report in reports[20:40]:  # waits in the publisher's buffer
        _publish(publisher, report)
    assert publisher.stats().pending_publish == 20
    nats_server.start()
    for report in reports[40:]:
        _publish(publisher, report)
    for report in reports[10:30]:  # a publisher retrying part of what it sent around the outage
        _publish(publisher, report)
    assert publisher.flush(WAIT_SECONDS)

    with SimicClient(ClientConfig(address=server.address, deadline_seconds=10.0)) as client:

        def stored() -> int:
            return client.list_field_reports(simic_pb2.ListFieldReportsRequest(run_id="run-outage")).total_size

        eventually(lambda: stored() == 60, timeout=WAIT_SECONDS, what=f"60 stored reports; server log:\n{server.log()}")
        page = client.list_field_reports(simic_pb2.ListFieldReportsRequest(page_size=1000))
    assert sorted(r.report_id for r in page.reports) == sorted(r.report_id for r in reports)
    assert page.total_size == 60
    assert server.stop() == 0
    log = server.log()
    assert "lost NATS" in log and "back on NATS" in log
    assert "60 field reports stored (60 from the bus since start)" in log
