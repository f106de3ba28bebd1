"""Subject names, NATS matching, and which stream a subject or filter belongs to."""

from __future__ import annotations

import pytest

from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2
from esper.oona import subjects
from esper.oona.config import DEFAULT_STREAMS, OonaConfig, StreamSpec

EMERGENCY = lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY
NORMAL = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL


def test_subject_helpers_land_in_the_streams_of_the_design() -> None:
    expected = {
        subjects.telemetry_subject("run-1", "blocks.0.mlp"): "ESPER_TELEMETRY",
        subjects.system_state_subject("run-1"): "ESPER_TELEMETRY",
        subjects.run_event_subject("run-1"): "ESPER_TELEMETRY",
        subjects.command_subject("run-1", NORMAL): "ESPER_CONTROL",
        subjects.command_subject("run-1", EMERGENCY): "ESPER_CONTROL",
        subjects.field_report_subject("run-1"): "ESPER_FIELD_REPORTS",
        subjects.compile_job_subject("FAST"): "ESPER_COMPILE_JOBS",
        subjects.policy_subject(): "ESPER_POLICY",
        subjects.transition_subject("run-1"): "ESPER_TRANSITIONS",
    }
    for subject, stream in expected.items():
        assert subjects.stream_for_subject(DEFAULT_STREAMS, subject).name == stream, subject


def test_commands_route_by_priority_and_list_emergency_first() -> None:
    assert subjects.command_subject("r", EMERGENCY) == "esper.control.emergency.r"
    unspecified = lifecycle_pb2.MESSAGE_PRIORITY_UNSPECIFIED
    assert subjects.command_subject("r", unspecified) == "esper.control.normal.r"
    assert subjects.command_subjects("r") == ("esper.control.emergency.r", "esper.control.normal.r")


def test_seed_ids_with_dots_become_one_reversible_token() -> None:
    for seed_id in ("blocks.0.mlp", "layer-1", "a%2Eb", "features.3", "x y"):
        token = subjects.seed_token(seed_id)
        assert "." not in token and " " not in token and "*" not in token and ">" not in token
        assert subjects.seed_id_from_token(token) == seed_id
    subject = subjects.telemetry_subject("run-1", "blocks.0.mlp")
    assert subject.count(".") == 4
    assert subjects.seed_token("blocks.0.mlp") != subjects.seed_token("blocks_0_mlp")


@pytest.mark.parametrize("run_id", ["", "run.1", "run 1", "run*", ">", "r" * 129])
def test_run_ids_that_are_not_one_token_are_refused(run_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        subjects.field_report_subject(run_id)
    assert caught.value.violations[0].field == "run_id"


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.b.c", "a.b", False),
    ],
)
def test_subject_matching_follows_nats(pattern: str, subject: str, matches: bool) -> None:
    assert subjects.subject_matches(pattern, subject) is matches


def test_filters_must_read_exactly_one_stream_and_never_dead_letters() -> None:
    spec = subjects.stream_for_filter(DEFAULT_STREAMS, "esper.control.emergency.*", "esper.dlq")
    assert spec.name == "ESPER_CONTROL"
    with pytest.raises(InvalidArgument):
        subjects.stream_for_filter(DEFAULT_STREAMS, "esper.>", "esper.dlq")  # several streams
    with pytest.raises(InvalidArgument):
        subjects.stream_for_filter(DEFAULT_STREAMS, "other.>", "esper.dlq")  # none
    with pytest.raises(InvalidArgument):
        subjects.stream_for_filter(DEFAULT_STREAMS, "esper.dlq.>", "esper.dlq")


def test_publish_subjects_must_be_literal_and_taken_by_a_stream() -> None:
    for bad in ("esper.telemetry.*", "esper.telemetry.>", "esper..x", "nowhere.x", "esper.telemetry.a b"):
        with pytest.raises(InvalidArgument):
            subjects.stream_for_subject(DEFAULT_STREAMS, bad)


def test_config_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="distinct"):
        OonaConfig(streams=(*DEFAULT_STREAMS, StreamSpec("ESPER_DLQ", ("x.>",))))
    with pytest.raises(ValueError, match="hmac_secret"):
        OonaConfig(hmac_secret=b"short")
    with pytest.raises(ValueError, match="max_deliver"):
        OonaConfig(max_deliver=0)
    with pytest.raises(ValueError, match="subject pattern"):
        StreamSpec("S", ("a.>.b",))
    assert "hmac_secret" not in repr(OonaConfig(hmac_secret=b"0123456789abcdef"))
