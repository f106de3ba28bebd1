"""Kasmina's spans: one germination is one trace.

The command that germinates a seed is traced under the epoch boundary where
Tamiyo decided it. Every later command for that adaptation (load, graft, blend,
fossilize or cull), at whatever boundary it comes, is a child of the germination's
span and links to the boundary that sent it, so the whole adaptation, from
Tamiyo's decision to Kasmina's graft and on to its outcome, reads as one trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span

from esper.kasmina.seed import KasminaSeed
from esper.leyline.v1 import lifecycle_pb2
from esper.observability.spans import esper_attributes, tracer

_TRACER = tracer(__name__)


@contextmanager
def command_span(run_id: str, seed: KasminaSeed, command: Any) -> Iterator[Span]:
    """The span of one command: under the seed's germination when it carries one, else under the caller's."""
    attributes: dict[str, Any] = esper_attributes(run_id=run_id, seed_id=seed.seed_id, command_id=command.command_id)
    attributes["esper.command_type"] = lifecycle_pb2.CommandType.Name(command.command_type)
    attributes["esper.target_stage"] = lifecycle_pb2.SeedStage.Name(command.target_stage)
    germination = seed.adaptation.trace_parent if seed.adaptation is not None else None
    if germination is None:
        with _TRACER.start_as_current_span("kasmina.apply_command", attributes=attributes) as span:
            yield span
        return
    sender = trace.get_current_span().get_span_context()
    links = [Link(sender)] if sender.is_valid else []
    parent = trace.set_span_in_context(trace.NonRecordingSpan(germination))
    with _TRACER.start_as_current_span(
        "kasmina.apply_command", context=parent, links=links, attributes=attributes
    ) as span:
        yield span


def germination_parent() -> trace.SpanContext | None:
    """The current span (a germinating command's) for the adaptation to carry; None when untraced."""
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


@contextmanager
def phase_span(name: str, seed: KasminaSeed, **attributes: str) -> Iterator[Span]:
    """A phase of a command (kernel fetch, graft) under the command's span."""
    with _TRACER.start_as_current_span(
        name, attributes={**esper_attributes(seed_id=seed.seed_id), **attributes}
    ) as span:
        yield span
