"""Subject names on Oona, and NATS subject matching.

Layout (each prefix is captured by one stream, see `config.DEFAULT_STREAMS`):

    esper.telemetry.<run>.seed.<seed>       SeedTelemetry of one seed
    esper.telemetry.<run>.state             SystemStatePacket at each epoch boundary
    esper.telemetry.<run>.events            RunEvent
    esper.control.<normal|emergency>.<run>  AdaptationCommand
    esper.field_reports.<run>               FieldReport
    esper.compile_jobs.<pipeline>           CompileJob
    esper.policy.updates                    PolicyUpdate
    esper.transitions.<run>                 PolicyTransition

Run ids follow `esper.ids.RUN`, the rule every rpc checks them by, which makes each
one subject token; pipeline names are checked the same way (letters, digits, '_'
and '-'). Seed ids are host module paths ("blocks.0.mlp") and contain dots, so
they are escaped into one token with `seed_token` (reversible).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote, unquote

from esper import ids
from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2
from esper.oona.config import StreamSpec

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NORMAL = "normal"
_EMERGENCY = "emergency"


def validate_token(value: str, what: str) -> str:
    """`value` if it is one safe subject token; InvalidArgument naming `what` otherwise."""
    if not _TOKEN.fullmatch(value):
        raise InvalidArgument.for_field(what, f"must match {_TOKEN.pattern} to be a subject token, got {value!r}")
    return value


def _run_token(run_id: str) -> str:
    return ids.RUN.check("run_id", run_id)


def seed_token(seed_id: str) -> str:
    """Escape a seed id into one subject token: percent-encoding, with '.' as %2E."""
    ids.SEED.check("seed_id", seed_id)
    return quote(seed_id, safe="").replace(".", "%2E")


def seed_id_from_token(token: str) -> str:
    return unquote(token)


def telemetry_subject(run_id: str, seed_id: str) -> str:
    return f"esper.telemetry.{_run_token(run_id)}.seed.{seed_token(seed_id)}"


def system_state_subject(run_id: str) -> str:
    return f"esper.telemetry.{_run_token(run_id)}.state"


def run_event_subject(run_id: str) -> str:
    return f"esper.telemetry.{_run_token(run_id)}.events"


def command_subject(run_id: str, priority: lifecycle_pb2.MessagePriority) -> str:
    """Where an AdaptationCommand of that priority goes; UNSPECIFIED counts as NORMAL."""
    lane = _EMERGENCY if priority == lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY else _NORMAL
    return f"esper.control.{lane}.{_run_token(run_id)}"


def command_subjects(run_id: str) -> tuple[str, str]:
    """A run's command subjects in consumption order: emergency first, then normal."""
    return (
        command_subject(run_id, lifecycle_pb2.MESSAGE_PRIORITY_EMERGENCY),
        command_subject(run_id, lifecycle_pb2.MESSAGE_PRIORITY_NORMAL),
    )


def field_report_subject(run_id: str) -> str:
    return f"esper.field_reports.{_run_token(run_id)}"


def compile_job_subject(pipeline: str) -> str:
    """Compile jobs of one pipeline, e.g. "fast"; Tezzeret workers filter on the ones they take."""
    return f"esper.compile_jobs.{validate_token(pipeline.lower(), 'pipeline')}"


def policy_subject() -> str:
    return "esper.policy.updates"


def transition_subject(run_id: str) -> str:
    return f"esper.transitions.{validate_token(run_id, 'run_id')}"


def dead_letter_subject(prefix: str, subject: str) -> str:
    """The dead-letter subject of a message published on `subject`."""
    return f"{prefix}.{subject}"


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: '*' is exactly one token, a final '>' is one or more tokens."""
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return index == len(pattern_tokens) - 1 and len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if token != "*" and token != subject_tokens[index]:
            return False
    return len(subject_tokens) == len(pattern_tokens)


def patterns_overlap(first: str, second: str) -> bool:
    """Whether some subject matches both patterns (used to check consumer filters against streams)."""
    a, b = first.split("."), second.split(".")
    for index in range(max(len(a), len(b))):
        token_a = a[index] if index < len(a) else None
        token_b = b[index] if index < len(b) else None
        if token_a == ">" or token_b == ">":
            return token_a is not None and token_b is not None
        if token_a is None or token_b is None:
            return False
        if token_a != "*" and token_b != "*" and token_a != token_b:
            return False
    return True


def is_literal(subject: str) -> bool:
    """A publishable subject: non-empty tokens, no wildcards, no whitespace."""
    tokens = subject.split(".")
    return all(token and token not in ("*", ">") and not any(c.isspace() for c in token) for token in tokens)


def stream_for_subject(streams: Sequence[StreamSpec], subject: str) -> StreamSpec:
    """The stream a publish on `subject` lands in; InvalidArgument if the subject is not publishable."""
    if not is_literal(subject):
        raise InvalidArgument.for_field("subject", f"{subject!r} is not a literal subject")
    for stream in streams:
        if any(subject_matches(pattern, subject) for pattern in stream.subjects):
            return stream
    raise InvalidArgument.for_field("subject", f"no stream takes {subject!r}")


def stream_for_filter(streams: Sequence[StreamSpec], pattern: str, dead_letter_prefix: str) -> StreamSpec:
    """The one stream a consumer filter reads from; InvalidArgument for none, several, or dead letters."""
    if patterns_overlap(pattern, f"{dead_letter_prefix}.>"):
        raise InvalidArgument.for_field("subjects", f"{pattern!r} reads dead letters; they are not consumed")
    found = [s for s in streams if any(patterns_overlap(pattern, taken) for taken in s.subjects)]
    if len(found) != 1:
        names = [s.name for s in found] or "no stream"
        raise InvalidArgument.for_field("subjects", f"{pattern!r} must read exactly one stream, reads {names}")
    return found[0]
