"""Every boundary's decision as experience for Simic: a `PolicyTransition`.

A transition holds the observation graph, the legal-action mask, the kernel
candidates in budget, the action each seed took, the kernel of a germination, the
action's log-probability under the policy and the policy's value estimate, with the
policy's id and version. A learned policy leaves its record in the step outcome;
for heuristic-v1 (and a learned policy's fallback boundaries) the controller builds
the same context on a copy of the run's state and labels the heuristic's commands as
actions, so behaviour cloning learns from exactly what the heuristic saw.

Ids are UUIDv5 of the run, epoch, policy and observation, so a repeated step gives
the same id and Simic stores it once.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from esper.leyline.v1 import lifecycle_pb2, policy_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.context import DecisionContext, DecisionRecord, decision_context, prepare_boundary
from esper.tamiyo.gates import LifecycleGates
from esper.tamiyo.graph_proto import graph_to_proto, tensor_to_proto
from esper.tamiyo.kernels import KernelDirectory
from esper.tamiyo.masks import ADVANCE, CULL, FOSSILIZE, GERMINATE, WAIT
from esper.tamiyo.observation import Observation, StepOutcome
from esper.tamiyo.state import RunState

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://esper.leyline.v1/tamiyo/transitions")
_S = lifecycle_pb2
_ACTION_OF_COMMAND = {
    _S.COMMAND_TYPE_REQUEST_GERMINATION: GERMINATE,
    _S.COMMAND_TYPE_ADVANCE: ADVANCE,
    _S.COMMAND_TYPE_CANCEL_GERMINATION: CULL,
    _S.COMMAND_TYPE_CULL: CULL,
    _S.COMMAND_TYPE_FOSSILIZE: FOSSILIZE,
}
# Mask columns to SeedAction values (the enum starts with UNSPECIFIED).
SEED_ACTIONS = (
    policy_pb2.SEED_ACTION_WAIT,
    policy_pb2.SEED_ACTION_GERMINATE,
    policy_pb2.SEED_ACTION_ADVANCE,
    policy_pb2.SEED_ACTION_CULL,
    policy_pb2.SEED_ACTION_FOSSILIZE,
)


class TransitionSink(Protocol):
    """Where transitions go: Oona (mesh, embedded) or Simic directly."""

    def record(self, transition: policy_pb2.PolicyTransition) -> None: ...


def shadow_record(
    config: TamiyoConfig,
    state_before: RunState,
    observation: Observation,
    kernels: KernelDirectory | None,
    outcome: StepOutcome,
) -> DecisionRecord:
    """The record of a heuristic step: its context rebuilt on a copy of the state before the step,
    its commands labelled as actions."""
    state = copy.deepcopy(state_before)
    scratch = StepOutcome(epoch=observation.epoch)
    previous = prepare_boundary(LifecycleGates(config), config, state, observation, scratch)
    context = decision_context(
        config,
        state,
        observation,
        kernels if observation.finite else None,
        finished=frozenset(scratch.finished_seeds),
        previous_score=previous,
    )
    actions, kernel_row = label_actions(context, outcome)
    return DecisionRecord(context=context, seed_actions=actions, kernel_row=kernel_row)


def label_actions(context: DecisionContext, outcome: StepOutcome) -> tuple[np.ndarray, int]:
    """Each seed's action as a mask column, from the commands a step issued; the germination's kernel row."""
    rows = {seed_id: row for row, seed_id in enumerate(context.graph.seed_ids)}
    kernels = {kernel_id: row for row, kernel_id in enumerate(context.graph.kernel_ids)}
    actions = np.full(len(rows), WAIT, dtype=np.int64)
    kernel_row = -1
    for command in outcome.commands:
        row = rows.get(command.seed_id)
        action = _ACTION_OF_COMMAND.get(command.command_type)
        if row is None or action is None or actions[row] == GERMINATE:
            # The promotion to LOADING issued with a germination belongs to the germination.
            continue
        actions[row] = action
        if action == GERMINATE:
            kernel_row = kernels.get(command.kernel_id, -1)
    return actions, kernel_row


def make_transition(
    observation: Observation,
    record: DecisionRecord,
    *,
    policy_id: str,
    policy_version: int,
    fallback_reason: str = "",
) -> policy_pb2.PolicyTransition:
    context = record.context
    graph = graph_to_proto(context.graph)
    digest = hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()[:16]
    boundary = observation.boundary
    kernel_id = context.graph.kernel_ids[record.kernel_row] if record.kernel_row >= 0 else ""
    transition = policy_pb2.PolicyTransition(
        transition_id=str(
            uuid.uuid5(_NAMESPACE, f"{boundary.run_id}/{boundary.epoch}/{policy_id}/{policy_version}/{digest}")
        ),
        run_id=boundary.run_id,
        epoch=boundary.epoch,
        policy_id=policy_id,
        policy_version=policy_version,
        observation=graph,
        action_mask=tensor_to_proto(context.mask),
        kernel_mask=tensor_to_proto(context.kernel_mask),
        seed_actions=seed_actions_to_proto(record.seed_actions),
        kernel_id=kernel_id,
        log_prob=record.log_prob,
        value=record.value,
        fallback=bool(fallback_reason),
        fallback_reason=fallback_reason,
        validation_score=observation.score if np.isfinite(observation.score) else 0.0,
        metric_direction=observation.boundary.metric_direction,
        parameter_count=observation.model_parameters,
        final_epoch=observation.final_epoch,
        free_slots=context.free_slots,
    )
    transition.transition_time.CopyFrom(boundary.time)
    return transition


def seed_actions_to_proto(actions: Sequence[int] | np.ndarray) -> list[policy_pb2.SeedAction]:
    return [SEED_ACTIONS[int(action)] for action in actions]


def seed_actions_from_proto(actions: Sequence[int]) -> np.ndarray:
    """Mask columns of SeedAction values; ValueError for UNSPECIFIED or an unknown value."""
    columns = []
    for action in actions:
        if action not in SEED_ACTIONS:
            raise ValueError(f"seed action {action} is not a SeedAction")
        columns.append(SEED_ACTIONS.index(action))
    return np.asarray(columns, dtype=np.int64)
