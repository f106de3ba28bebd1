"""Field reports and transitions from Oona into Simic's store; policies that passed the gate onto it.

Field reports are taken by the durable "simic" consumer, transitions by "simic_transitions".

Each FieldReport envelope is stored (one transaction, committed) before the
handler returns, and only then does Oona ack it: a crash in between redelivers
the report, and the store drops the repeat by its report id, so every report is
at rest exactly once. Envelopes Oona rejects (unknown type, newer schema, bad
HMAC) never get here: Oona dead-letters and counts them. A well-formed envelope
that carries something other than a FieldReport, or a report Simic cannot store,
is dropped with a warning and counted: delivering it again would not help.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from esper.errors import InvalidArgument
from esper.leyline.v1 import control_pb2, policy_pb2, simic_pb2
from esper.leyline.v1.services import SimicServiceApi
from esper.oona.api import Bus, ConsumerSpec, Subscription
from esper.oona.envelope import OpenedEnvelope
from esper.oona.subjects import policy_subject

logger = logging.getLogger(__name__)

DURABLE = "simic"
# Every run's field reports (esper.oona.subjects.field_report_subject is one run's).
FIELD_REPORTS_FILTER = "esper.field_reports.>"


@dataclass(frozen=True)
class IntakeCounts:
    """Since the intake started: reports newly stored, repeats dropped, messages refused."""

    stored: int = 0
    duplicates: int = 0
    refused: int = 0


class _Intake:
    """One durable consumer into a SimicServiceApi: stores each message, counts, drops what cannot be stored."""

    message_type: type[Message]

    def __init__(self, simic: SimicServiceApi, durable: str, subject_filter: str) -> None:
        self._simic = simic
        self.spec = ConsumerSpec(durable, (subject_filter,))
        self._lock = threading.Lock()
        self._counts = IntakeCounts()

    def subscribe(self, bus: Bus) -> Subscription:
        return bus.subscribe(self.spec, self.handle)

    def handle(self, opened: OpenedEnvelope) -> None:
        """Store one message; raises (so Oona retries) only when storing failed for a passing reason."""
        message = opened.message
        if not isinstance(message, self.message_type):
            expected = self.message_type.DESCRIPTOR.name
            self._refuse(opened, f"carries {message.DESCRIPTOR.full_name}, not a {expected}")
            return
        try:
            accepted, duplicates = self._record(message)
        except InvalidArgument as error:
            self._refuse(opened, str(error))
            return
        with self._lock:
            self._counts = IntakeCounts(
                stored=self._counts.stored + accepted,
                duplicates=self._counts.duplicates + duplicates,
                refused=self._counts.refused,
            )

    def counts(self) -> IntakeCounts:
        with self._lock:
            return self._counts

    def _record(self, message: Any) -> tuple[int, int]:
        """Store `message`: (newly stored, repeats dropped)."""
        raise NotImplementedError

    def _refuse(self, opened: OpenedEnvelope, why: str) -> None:
        with self._lock:
            self._counts = IntakeCounts(
                stored=self._counts.stored, duplicates=self._counts.duplicates, refused=self._counts.refused + 1
            )
        logger.warning("simic: dropped message %s from %r: %s", opened.idempotency_key, opened.envelope.source, why)


class FieldReportIntake(_Intake):
    """Consumes field reports from a bus into a SimicServiceApi (in process: the SimicService)."""

    message_type = control_pb2.FieldReport

    def __init__(self, simic: SimicServiceApi, *, durable: str = DURABLE) -> None:
        super().__init__(simic, durable, FIELD_REPORTS_FILTER)

    def _record(self, message: Any) -> tuple[int, int]:
        recorded = self._simic.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=[message]))
        return recorded.accepted_count, recorded.duplicate_count


TRANSITIONS_DURABLE = "simic_transitions"
# Every run's transitions (esper.oona.subjects.transition_subject is one run's).
TRANSITIONS_FILTER = "esper.transitions.>"


class TransitionIntake(_Intake):
    """Consumes Tamiyo's transitions from a bus into a SimicApi; the same contract as FieldReportIntake."""

    message_type = policy_pb2.PolicyTransition

    def __init__(self, simic: SimicServiceApi, *, durable: str = TRANSITIONS_DURABLE) -> None:
        super().__init__(simic, durable, TRANSITIONS_FILTER)

    def _record(self, message: Any) -> tuple[int, int]:
        recorded = self._simic.record_transitions(simic_pb2.RecordTransitionsRequest(transitions=[message]))
        return recorded.accepted_count, recorded.duplicate_count


class PolicyPublisher:
    """Announces policies that passed the validation gate on Oona (`esper.policy.updates`)."""

    def __init__(self, bus: Bus, *, source: str = "simic") -> None:
        self._bus = bus
        self._source = source

    def __call__(self, update: control_pb2.PolicyUpdate) -> None:
        envelope = self._bus.seal(
            update, source=self._source, idempotency_key=f"policy/{update.policy_id}/{update.version}"
        )
        self._bus.publish(policy_subject(), envelope)
        logger.info("simic: published policy %s v%d", update.policy_id, update.version)
