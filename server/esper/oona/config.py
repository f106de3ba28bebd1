"""Configuration of Oona, the message bus: streams, delivery policy, buffer, signing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from esper import checks
from esper.state.packet import SCHEMA_VERSION

_STREAM_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_SUBJECT_PATTERN = re.compile(r"[A-Za-z0-9_-]+(\.([A-Za-z0-9_-]+|\*))*(\.>)?")


@dataclass(frozen=True)
class StreamSpec:
    """One JetStream stream: its name, the subjects it captures, and how long it keeps them.

    A work-queue stream (compile jobs) deletes a message once a consumer acks it;
    the others keep messages until `max_age_seconds`, so a new durable consumer
    can replay them.
    """

    name: str
    subjects: tuple[str, ...]
    work_queue: bool = False
    max_age_seconds: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))
        if not _STREAM_NAME.fullmatch(self.name):
            raise ValueError(f"stream name must match {_STREAM_NAME.pattern}, got {self.name!r}")
        if not self.subjects:
            raise ValueError(f"stream {self.name} captures no subject")
        for subject in self.subjects:
            if not _SUBJECT_PATTERN.fullmatch(subject):
                raise ValueError(f"stream {self.name}: {subject!r} is not a subject pattern")
        checks.positive(f"streams.{self.name}.max_age_seconds", self.max_age_seconds)


DEFAULT_STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("ESPER_TELEMETRY", ("esper.telemetry.>",), max_age_seconds=24 * 3600.0),
    StreamSpec("ESPER_CONTROL", ("esper.control.normal.>", "esper.control.emergency.>")),
    StreamSpec("ESPER_FIELD_REPORTS", ("esper.field_reports.>",), max_age_seconds=30 * 24 * 3600.0),
    StreamSpec("ESPER_COMPILE_JOBS", ("esper.compile_jobs.>",), work_queue=True),
    StreamSpec("ESPER_POLICY", ("esper.policy.>",), max_age_seconds=30 * 24 * 3600.0),
    StreamSpec("ESPER_TRANSITIONS", ("esper.transitions.>",), max_age_seconds=30 * 24 * 3600.0),
)


@dataclass(frozen=True)
class OonaConfig:
    """Settings of one bus client (a `JetStreamBus` or an `InProcessBus`).

    Delivery: a consumer acks after its handler returns; a handler that raises is
    retried after `redelivery_delay_seconds`, a message never acked is redelivered
    after `ack_wait_seconds`, and after `max_deliver` deliveries it goes to the
    dead-letter stream (`dead_letter_prefix` + "." + its subject). JetStream drops a
    repeated idempotency key within `duplicate_window_seconds`; consumers drop
    repeats of the last `dedup_cache_size` keys they handled.

    Publishing never blocks the caller: messages wait in a bounded local buffer
    (`buffer_max_messages` per priority) until JetStream acknowledges them, which
    is also where they wait while NATS is unreachable. A full buffer drops the new
    message, counts it and raises an alert.

    Past `conservative_queue_depth` messages waiting for this client's consumers the
    bus reports conservative mode. The in-process bus keeps the last
    `memory_retention_messages` of each stream for consumers created later.
    `hmac_secret` signs what `seal` builds (and binds it to its subject when it is
    published) and makes consumers reject envelopes whose HMAC does not verify, that
    were signed for another subject, or whose publish time is more than
    `max_age_seconds` from when the stream stored them; None = unsigned. With a
    `state_dir`, each consumer keeps the idempotency keys it handled in a file there
    (for `max_age_seconds` and a margin), so a message replayed under a handled key is
    dead-lettered after a restart too. With `tls_ca` (and `tls_cert`/`tls_key` for a
    server that verifies clients, as the deployed NATS does to map each service to its
    own permissions) the connection to a `tls://` URL is TLS.
    """

    url: str = "nats://127.0.0.1:4222"
    client_name: str = "esper"
    streams: tuple[StreamSpec, ...] = DEFAULT_STREAMS
    dead_letter_stream: str = "ESPER_DLQ"
    dead_letter_prefix: str = "esper.dlq"
    dead_letter_max_age_seconds: float = 30 * 24 * 3600.0
    file_storage: bool = True
    duplicate_window_seconds: float = 120.0
    ack_wait_seconds: float = 30.0
    max_deliver: int = 5
    redelivery_delay_seconds: float = 1.0
    dedup_cache_size: int = 10_000
    buffer_max_messages: int = 50_000
    publish_window: int = 512
    publish_timeout_seconds: float = 2.0
    connect_timeout_seconds: float = 2.0
    start_timeout_seconds: float = 10.0
    reconnect_wait_seconds: float = 0.25
    request_timeout_seconds: float = 5.0
    fetch_batch: int = 64
    fetch_wait_seconds: float = 0.5
    priority_probe_seconds: float = 0.05
    conservative_queue_depth: int = 1_000
    memory_retention_messages: int = 10_000
    hmac_secret: bytes | None = field(default=None, repr=False)
    hmac_key_id: str = ""
    schema_version: int = SCHEMA_VERSION
    max_age_seconds: float = 300.0
    state_dir: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams", tuple(self.streams))
        names = [stream.name for stream in self.streams]
        if len(set(names)) != len(names) or self.dead_letter_stream in names:
            raise ValueError(f"stream names must be distinct, got {[*names, self.dead_letter_stream]}")
        if not _STREAM_NAME.fullmatch(self.dead_letter_stream):
            raise ValueError(f"dead_letter_stream must match {_STREAM_NAME.pattern}")
        if not _SUBJECT_PATTERN.fullmatch(self.dead_letter_prefix) or "*" in self.dead_letter_prefix:
            raise ValueError(f"dead_letter_prefix must be a literal subject, got {self.dead_letter_prefix!r}")
        _require_positive(
            self,
            "duplicate_window_seconds",
            "ack_wait_seconds",
            "publish_timeout_seconds",
            "connect_timeout_seconds",
            "start_timeout_seconds",
            "reconnect_wait_seconds",
            "request_timeout_seconds",
            "fetch_wait_seconds",
            "priority_probe_seconds",
            "dead_letter_max_age_seconds",
            "max_age_seconds",
        )
        _require_positive(
            self,
            "max_deliver",
            "dedup_cache_size",
            "buffer_max_messages",
            "publish_window",
            "fetch_batch",
            "conservative_queue_depth",
            "schema_version",
            "memory_retention_messages",
        )
        checks.non_negative("redelivery_delay_seconds", self.redelivery_delay_seconds)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("tls_cert needs tls_ca (the CA that issued the NATS server's certificate)")
        if self.hmac_secret is not None and len(self.hmac_secret) < 16:
            raise ValueError("hmac_secret must be at least 16 bytes")

    @property
    def dead_letter_subjects(self) -> str:
        return f"{self.dead_letter_prefix}.>"


def _require_positive(config: OonaConfig, *names: str) -> None:
    for name in names:
        checks.positive(name, getattr(config, name))
