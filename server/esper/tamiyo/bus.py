"""Tamiyo on Oona: seed telemetry in, adaptation commands and field reports out.

`PublishingTamiyo` wraps a TamiyoServiceApi: after each step it publishes the step's
commands on `command_subject(run, priority)` and its field reports on
`field_report_subject(run)`, each sealed with its own id as the idempotency key
(command_id, report_id), so a repeated step, or a report Tolaria also publishes,
is dropped by JetStream's dedup window and by every consumer. Publishing hands
the envelope to the bus's buffer and returns: it never waits on NATS, and a
publish the bus refuses is logged and counted, never an error of the step.

`TelemetryIntake` is the durable "tamiyo" consumer of seed telemetry: it keeps
each seed's newest report in the controller (`observe_telemetry`), which
GetStatus reads. Steps decide on the telemetry in their request, so the
decisions are the same with or without the bus.

`TransitionPublisher` puts every step's transition on the bus for Simic;
`PolicyUpdateIntake` hands Simic's published policies to the controller, which
swaps between two steps when it follows updates.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from google.protobuf.message import Message

from esper.errors import EsperError, FailedPrecondition, InvalidArgument, NotFound
from esper.leyline.v1 import control_pb2, lifecycle_pb2, policy_pb2, tamiyo_pb2, telemetry_pb2
from esper.leyline.v1.services import TamiyoServiceApi
from esper.oona.api import Bus, ConsumerSpec, Subscription
from esper.oona.envelope import OpenedEnvelope
from esper.oona.subjects import command_subject, field_report_subject, policy_subject, transition_subject

logger = logging.getLogger(__name__)

SOURCE = "tamiyo"
DURABLE = "tamiyo"
# Seed telemetry of every run and seed (not the run's state packets or events).
SEED_TELEMETRY_FILTER = "esper.telemetry.*.seed.*"


class TelemetryObserver(Protocol):
    def observe_telemetry(self, telemetry: telemetry_pb2.SeedTelemetry) -> bool: ...


class PublishingTamiyo:
    """A TamiyoServiceApi that also publishes every step's commands and field reports (implements TamiyoServiceApi)."""

    def __init__(self, tamiyo: TamiyoServiceApi, bus: Bus, *, source: str = SOURCE) -> None:
        self._tamiyo = tamiyo
        self._bus = bus
        self._source = source
        self._lock = threading.Lock()
        self._published = 0
        self._refused = 0

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        response = self._tamiyo.step(request)
        self.publish_step(response)
        return response

    def get_status(self, request: tamiyo_pb2.GetStatusRequest) -> tamiyo_pb2.GetStatusResponse:
        return self._tamiyo.get_status(request)

    def load_policy(self, request: tamiyo_pb2.LoadPolicyRequest) -> tamiyo_pb2.LoadPolicyResponse:
        return self._tamiyo.load_policy(request)

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        return self._tamiyo.export_controller_state(request)

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        return self._tamiyo.restore_controller_state(request)

    def publish_step(self, response: tamiyo_pb2.StepResponse) -> None:
        """Hand a step's commands and field reports to the bus; refusals are logged and counted."""
        for command in response.commands:
            subject = functools.partial(command_subject, command.run_id, command.priority)
            self._publish(command, command.command_id, subject, command.priority)
        for report in response.field_reports:
            self._publish(report, report.report_id, functools.partial(field_report_subject, report.run_id))

    def counts(self) -> tuple[int, int]:
        """(messages handed to the bus, messages it refused) since start."""
        with self._lock:
            return self._published, self._refused

    def _publish(
        self,
        message: Message,
        key: str,
        subject: Callable[[], str],
        priority: lifecycle_pb2.MessagePriority = lifecycle_pb2.MESSAGE_PRIORITY_NORMAL,
    ) -> None:
        try:
            envelope = self._bus.seal(message, source=self._source, idempotency_key=key, priority=priority)
            self._bus.publish(subject(), envelope)
        except EsperError as error:
            with self._lock:
                self._refused += 1
            logger.warning("tamiyo: could not publish %s %s: %s", message.DESCRIPTOR.name, key, error)
            return
        with self._lock:
            self._published += 1


class TelemetryIntake:
    """The durable "tamiyo" consumer: seed telemetry into a controller's observed telemetry."""

    def __init__(self, observer: TelemetryObserver, *, durable: str = DURABLE) -> None:
        self._observer = observer
        self.spec = ConsumerSpec(durable, (SEED_TELEMETRY_FILTER,))

    def subscribe(self, bus: Bus) -> Subscription:
        return bus.subscribe(self.spec, self.handle)

    def handle(self, opened: OpenedEnvelope) -> None:
        telemetry = opened.message
        if not isinstance(telemetry, telemetry_pb2.SeedTelemetry):
            logger.warning(
                "tamiyo: dropped message %s: carries %s, not SeedTelemetry",
                opened.idempotency_key,
                telemetry.DESCRIPTOR.full_name,
            )
            return
        self._observer.observe_telemetry(telemetry)


class TransitionPublisher:
    """A TransitionSink that puts each transition on Oona (`esper.transitions.<run>`), keyed by its id.

    Like the commands, a publish never waits on NATS and a refusal is logged and counted.
    """

    def __init__(self, bus: Bus, *, source: str = SOURCE) -> None:
        self._bus = bus
        self._source = source
        self._lock = threading.Lock()
        self._published = 0
        self._refused = 0

    def record(self, transition: policy_pb2.PolicyTransition) -> None:
        try:
            envelope = self._bus.seal(transition, source=self._source, idempotency_key=transition.transition_id)
            self._bus.publish(transition_subject(transition.run_id), envelope)
        except EsperError as error:
            with self._lock:
                self._refused += 1
            logger.warning("tamiyo: could not publish transition %s: %s", transition.transition_id, error)
            return
        with self._lock:
            self._published += 1

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self._published, self._refused


class PolicyFollower(Protocol):
    def on_policy_update(self, update: control_pb2.PolicyUpdate) -> bool: ...


POLICY_DURABLE = "tamiyo_policy"


class PolicyUpdateIntake:
    """The durable "tamiyo_policy" consumer: Simic's published policies, handed to the controller.

    The controller takes one only when it follows updates (nothing is pinned); fetching it
    from Simic can fail for a passing reason, and then the update is retried.
    """

    def __init__(self, follower: PolicyFollower, *, durable: str = POLICY_DURABLE) -> None:
        self._follower = follower
        self.spec = ConsumerSpec(durable, (policy_subject(),))

    def subscribe(self, bus: Bus) -> Subscription:
        return bus.subscribe(self.spec, self.handle)

    def handle(self, opened: OpenedEnvelope) -> None:
        update = opened.message
        if not isinstance(update, control_pb2.PolicyUpdate):
            logger.warning("tamiyo: dropped message %s: not a PolicyUpdate", opened.idempotency_key)
            return
        try:
            self._follower.on_policy_update(update)
        except (InvalidArgument, FailedPrecondition, NotFound) as error:
            logger.warning("tamiyo: policy update %s v%d not taken: %s", update.policy_id, update.version, error)
