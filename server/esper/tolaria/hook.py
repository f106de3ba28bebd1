"""The epoch-end hook: state packet -> Tamiyo -> Kasmina, timed against the 18 ms budget.

Budget (docs/benchmarks.md): state assembly 3.5 ms + Tamiyo 12 ms + adaptation 1.5 ms + guard 1 ms.
The validation pass that produces the telemetry runs before the hook and is not
part of it. When Tamiyo cannot answer (down, or past its deadline), the hook gives
up on this boundary: no commands, the run goes on conservatively and says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.trace import Status, StatusCode

from esper.errors import DeadlineExceeded, EsperError, Unavailable
from esper.leyline.v1 import (
    control_pb2,
    kasmina_pb2,
    lifecycle_pb2,
    tamiyo_pb2,
    telemetry_pb2,
)
from esper.observability.spans import esper_attributes, tracer
from esper.state import pack_system_state

logger = logging.getLogger(__name__)
_TRACER = tracer(__name__)


class Controller(Protocol):
    """The part of Tamiyo's API the hook calls (in-process or over gRPC)."""

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse: ...


class CommandTarget(Protocol):
    """The part of Kasmina's API the hook calls."""

    def apply_command(self, request: kasmina_pb2.ApplyCommandRequest) -> kasmina_pb2.ApplyCommandResponse: ...


@dataclass(frozen=True)
class BoundaryState:
    """What the training loop knows at the end of an epoch."""

    run_id: str
    epoch: int
    global_step: int
    training_loss: float
    validation_loss: float
    validation_accuracy: float
    epoch_ms: int
    parameter_count: int
    final_epoch: int
    seed_layout: Sequence[telemetry_pb2.SeedDescriptor]
    telemetry: Sequence[telemetry_pb2.SeedTelemetry]
    host_layers: Sequence[telemetry_pb2.HostLayer] = ()
    validation_metric: float = 0.0
    metric_direction: lifecycle_pb2.MetricDirection = lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
    device_kind: str = ""


@dataclass
class HookOutcome:
    """What happened at one boundary, with the time each phase took."""

    applied: list[control_pb2.AdaptationCommand] = field(default_factory=list)
    refused: list[tuple[control_pb2.AdaptationCommand, str]] = field(default_factory=list)
    decisions: list[control_pb2.AdaptationDecision] = field(default_factory=list)
    field_reports: list[control_pb2.FieldReport] = field(default_factory=list)
    signal: control_pb2.AdaptationSignal = field(default_factory=control_pb2.AdaptationSignal)
    controller_error: str = ""
    assemble_ms: float = 0.0
    controller_ms: float = 0.0
    apply_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.assemble_ms + self.controller_ms + self.apply_ms


def run_hook(state: BoundaryState, controller: Controller, kasmina: CommandTarget) -> HookOutcome:
    """One boundary as the span `tolaria.hook`: Tamiyo's Step and Kasmina's commands are its children."""
    with _TRACER.start_as_current_span(
        "tolaria.hook", attributes=esper_attributes(run_id=state.run_id, epoch=state.epoch)
    ) as span:
        outcome = _run_hook(state, controller, kasmina)
        span.set_attribute("esper.decisions", len(outcome.decisions))
        span.set_attribute("esper.commands_applied", len(outcome.applied))
        span.set_attribute("esper.commands_refused", len(outcome.refused))
        if outcome.controller_error:
            span.set_status(Status(StatusCode.ERROR, outcome.controller_error))
        return outcome


def _run_hook(state: BoundaryState, controller: Controller, kasmina: CommandTarget) -> HookOutcome:
    outcome = HookOutcome()
    start = time.perf_counter()
    request = tamiyo_pb2.StepRequest(
        packet=pack_system_state(
            run_id=state.run_id,
            epoch=state.epoch,
            global_step=state.global_step,
            training_loss=state.training_loss,
            validation_loss=state.validation_loss,
            validation_accuracy=state.validation_accuracy,
            epoch_ms=state.epoch_ms,
            seeds=state.telemetry,
            validation_metric=state.validation_metric,
            metric_direction=state.metric_direction,
        ),
        seed_layout=state.seed_layout,
        telemetry=state.telemetry,
        parameter_count=state.parameter_count,
        final_epoch=state.final_epoch,
        host_layers=state.host_layers,
        device_kind=state.device_kind,
    )
    assembled = time.perf_counter()
    outcome.assemble_ms = (assembled - start) * 1e3
    try:
        response = controller.step(request)
    except (Unavailable, DeadlineExceeded) as exc:
        outcome.controller_error = f"Tamiyo unavailable ({exc.code}): {exc.message}"
        outcome.signal.conservative_mode = True
        outcome.signal.reason = "Tamiyo unavailable: no adaptation this epoch"
        outcome.controller_ms = (time.perf_counter() - assembled) * 1e3
        return outcome
    decided = time.perf_counter()
    outcome.controller_ms = (decided - assembled) * 1e3
    outcome.decisions = list(response.decisions)
    outcome.field_reports = list(response.field_reports)
    outcome.signal.CopyFrom(response.signal)
    for command in response.commands:
        try:
            kasmina.apply_command(kasmina_pb2.ApplyCommandRequest(command=command))
        except EsperError as exc:
            # An illegal or impossible command is refused and recorded; the run goes on.
            logger.warning("command %s refused: %s", command.command_id, exc)
            outcome.refused.append((command, f"{exc.reason}: {exc.message}"))
        else:
            outcome.applied.append(command)
    outcome.apply_ms = (time.perf_counter() - decided) * 1e3
    return outcome
