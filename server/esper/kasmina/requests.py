"""Checks of every Kasmina request, in one place.

Each `check_<rpc>` raises InvalidArgument naming the offending field. Whether
the run and seeds exist, and whether a transition is legal, is the operator's call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from esper import ids
from esper.errors import InvalidArgument
from esper.leyline.v1 import kasmina_pb2, lifecycle_pb2
from esper.paging import decode_page_token, validate_page_size

_COMMAND_TYPES = frozenset(lifecycle_pb2.CommandType.values()) - {lifecycle_pb2.COMMAND_TYPE_UNSPECIFIED}
_STAGES = frozenset(lifecycle_pb2.SeedStage.values()) - {lifecycle_pb2.SEED_STAGE_UNSPECIFIED}
_STRATEGIES = frozenset(lifecycle_pb2.GraftingStrategy.values())
_PRIORITIES = frozenset(lifecycle_pb2.MessagePriority.values())


@dataclass(frozen=True)
class SeedPage:
    """Where a ListSeedStates page starts and how long it is."""

    offset: int
    page_size: int
    fingerprint: str


def check_apply_command(request: kasmina_pb2.ApplyCommandRequest) -> None:
    if not request.HasField("command"):
        raise InvalidArgument.for_field("command", "is required")
    command = request.command
    ids.COMMAND.check("command.command_id", command.command_id)
    ids.RUN.check("command.run_id", command.run_id)
    ids.SEED.check("command.seed_id", command.seed_id)
    if command.command_type not in _COMMAND_TYPES:
        raise InvalidArgument.for_field(
            "command.command_type", f"must be set to a known command, got {command.command_type}"
        )
    if command.command_type == lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION:
        ids.KERNEL.check("command.kernel_id", command.kernel_id)
    if command.command_type == lifecycle_pb2.COMMAND_TYPE_ADVANCE and command.target_stage not in _STAGES:
        raise InvalidArgument.for_field(
            "command.target_stage", f"ADVANCE needs a known target stage, got {command.target_stage}"
        )
    if command.grafting_strategy not in _STRATEGIES:
        raise InvalidArgument.for_field(
            "command.grafting_strategy", f"unknown grafting strategy {command.grafting_strategy}"
        )
    if command.priority not in _PRIORITIES:
        raise InvalidArgument.for_field("command.priority", f"unknown priority {command.priority}")


def seed_list_fingerprint(request: kasmina_pb2.ListSeedStatesRequest) -> str:
    """Identity of a listing's filter; page tokens are only good for the same filter."""
    return json.dumps(["kasmina.ListSeedStates", request.run_id])


def check_list_seed_states(request: kasmina_pb2.ListSeedStatesRequest) -> SeedPage:
    ids.RUN.check("run_id", request.run_id)
    page_size = validate_page_size(request.page_size)
    fingerprint = seed_list_fingerprint(request)
    offset = decode_page_token(request.page_token, fingerprint)
    return SeedPage(offset=offset, page_size=page_size, fingerprint=fingerprint)


def check_stream_telemetry(request: kasmina_pb2.StreamTelemetryRequest) -> None:
    ids.RUN.check("run_id", request.run_id)
    for index, seed_id in enumerate(request.seed_ids):
        ids.SEED.check(f"seed_ids[{index}]", seed_id)
