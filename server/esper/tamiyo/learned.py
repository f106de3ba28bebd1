"""A learned policy: the GNN decides, heuristic-v1 vetoes and stands in when it fails.

One step:
  1. The boundary's bookkeeping, as every policy does it (context.prepare_boundary).
  2. The decision context: kernel candidates, the legal-action mask, the graph.
  3. The network's action, sampled (exploration, in Simic's episodes) or its mode.
  4. The veto: every chosen action must be legal under the mask, every command a
     legal lifecycle transition and germinations within the free concurrency slots.
  5. The commands, with reasons that name the policy and the probabilities.
A policy error, a non-finite output, a decision the veto refuses or a step slower
than `policy_timeout_ms` discards the policy's answer: the run's state goes back to
what it was and heuristic-v1 decides the boundary instead. That is counted and
recorded as a run-level decision, so it shows in the run's events.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch

from esper.kasmina.lifecycle import is_legal
from esper.leyline.v1 import lifecycle_pb2
from esper.observability import metrics
from esper.tamiyo.acting import Action, PolicyOutputError, act
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.context import DecisionContext, DecisionRecord, decision_context, prepare_boundary
from esper.tamiyo.gates import LifecycleGates
from esper.tamiyo.germination import Germination
from esper.tamiyo.gnn import TamiyoNet
from esper.tamiyo.issued import CommandType, Outcome, make_command
from esper.tamiyo.kernels import KernelChoice, KernelDirectory
from esper.tamiyo.masks import ACTIONS, ADVANCE, CULL, FOSSILIZE, GERMINATE, WAIT, actions_legal
from esper.tamiyo.observation import Observation, StepOutcome, stage_name
from esper.tamiyo.policy import HeuristicPolicy
from esper.tamiyo.state import RunState

logger = logging.getLogger(__name__)

_S = lifecycle_pb2
_NEXT_STAGE = {
    _S.SEED_STAGE_GERMINATED: _S.SEED_STAGE_LOADING,
    _S.SEED_STAGE_TRAINING: _S.SEED_STAGE_GRAFTING,
    _S.SEED_STAGE_GRAFTING: _S.SEED_STAGE_STABILIZATION,
    _S.SEED_STAGE_STABILIZATION: _S.SEED_STAGE_EVALUATING,
    _S.SEED_STAGE_EVALUATING: _S.SEED_STAGE_FINE_TUNING,
}
_CANCELLABLE = frozenset({_S.SEED_STAGE_GERMINATED, _S.SEED_STAGE_TRAINING})
_COMMAND_TARGET = {
    _S.COMMAND_TYPE_REQUEST_GERMINATION: _S.SEED_STAGE_GERMINATED,
    _S.COMMAND_TYPE_CANCEL_GERMINATION: _S.SEED_STAGE_CANCELLED,
    _S.COMMAND_TYPE_FOSSILIZE: _S.SEED_STAGE_FOSSILIZED,
    _S.COMMAND_TYPE_CULL: _S.SEED_STAGE_CULLED,
}


class ForbiddenDecision(RuntimeError):
    """The policy chose something the lifecycle or a budget forbids."""


class PolicyTimeout(RuntimeError):
    """The policy took longer than its time budget."""


class LearnedPolicy:
    """A TamiyoNet behind the lifecycle and budget veto, with heuristic-v1 as its fallback."""

    def __init__(
        self,
        config: TamiyoConfig,
        net: TamiyoNet,
        *,
        policy_id: str,
        version: int = 0,
        sample: bool = False,
        sample_decisions: bool = True,
        seed: int = 0,
    ) -> None:
        self._config = config
        self._net = net.eval()
        self._policy_id = policy_id
        self.version = version
        self._sample = sample
        self._sample_decisions = sample_decisions
        self._seed = seed
        self._gates = LifecycleGates(config)
        self._germination = Germination(config)
        self._heuristic = HeuristicPolicy(config)
        self.fallbacks = 0

    @property
    def policy_id(self) -> str:
        return self._policy_id

    @property
    def net(self) -> TamiyoNet:
        return self._net

    def decide(self, state: RunState, observation: Observation, kernels: KernelDirectory | None) -> StepOutcome:
        snapshot = copy.deepcopy(state)
        started = time.perf_counter()
        try:
            out = self._decide(state, observation, kernels)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            if elapsed_ms > self._config.policy_timeout_ms:
                raise PolicyTimeout(f"took {elapsed_ms:.1f} ms (budget {self._config.policy_timeout_ms} ms)")
            return out
        except Exception as exc:  # any failure of the policy hands the boundary to the heuristic
            return self._fall_back(state, snapshot, observation, kernels, exc)

    def _fall_back(
        self,
        state: RunState,
        snapshot: RunState,
        observation: Observation,
        kernels: KernelDirectory | None,
        error: Exception,
    ) -> StepOutcome:
        reason = f"{type(error).__name__}: {error}"
        logger.warning(
            "policy %s failed at epoch %d (%s); heuristic-v1 decides", self._policy_id, observation.epoch, reason
        )
        self.fallbacks += 1
        metrics.TAMIYO_POLICY_FALLBACKS.labels(cause=_cause(error)).inc()
        state.__dict__.update(copy.deepcopy(snapshot).__dict__)
        out = self._heuristic.decide(state, observation, kernels)
        out.fallback_reason = reason
        out.wait("", f"policy {self._policy_id} failed ({reason}); heuristic-v1 decided this boundary")
        return out

    def _decide(self, state: RunState, observation: Observation, kernels: KernelDirectory | None) -> StepOutcome:
        out = StepOutcome(epoch=observation.epoch)
        previous = prepare_boundary(self._gates, self._config, state, observation, out)
        context = decision_context(
            self._config,
            state,
            observation,
            kernels if observation.finite else None,
            finished=frozenset(out.finished_seeds),
            previous_score=previous,
        )
        if context.query_error:
            out.wait("", f"kernel query failed: {context.query_error}; no germination this boundary")
        generator = None
        if self._sample:
            generator = torch.Generator().manual_seed(_step_seed(self._seed, observation))
        action = act(
            self._net,
            context.graph,
            context.mask,
            context.kernel_mask,
            free_slots=context.free_slots,
            sample=self._sample,
            sample_decisions=self._sample_decisions,
            generator=generator,
        )
        veto(action, context)
        self._apply(state, observation, context, action, out)
        out.record = DecisionRecord(
            context=context,
            seed_actions=action.seed_actions,
            kernel_row=action.kernel_row,
            log_prob=action.log_prob,
            value=action.value,
        )
        state.last_epoch = observation.epoch
        state.stepped = True
        return out

    def _apply(
        self,
        state: RunState,
        observation: Observation,
        context: DecisionContext,
        action: Action,
        out: StepOutcome,
    ) -> None:
        acting = set(np.flatnonzero(action.seed_actions != WAIT).tolist())
        acting |= {observation.rows[s] for s in state.adaptations if s in observation.rows}
        for row in sorted(acting):
            choice = int(action.seed_actions[row])
            view = observation.seeds[row]
            probability = float(action.seed_probability[row])
            why = f"policy {self._policy_id}: {ACTIONS[choice]} (p={probability:.2f})"
            if choice == WAIT:
                if view.seed_id in state.adaptations:
                    out.wait(view.seed_id, f"{why}; {stage_name(view.stage)}")
                continue
            if choice == GERMINATE:
                candidate = context.candidates[action.kernel_row]
                kernel = candidate.kernel
                choice_reason = (
                    f"kernel {kernel.kernel_id} (blueprint {kernel.blueprint_id}, {kernel.parameter_count} params, "
                    f"p={action.kernel_probability:.2f} of {len(context.kernels_for(row))} in budget)"
                )
                self._germination.germinate(
                    state, observation, view, KernelChoice(kernel=kernel, tags=(), reason=choice_reason), why, out
                )
                continue
            self._command(state, observation, view.seed_id, view.stage, choice, why, out)
        if not (action.seed_actions == GERMINATE).any():
            # Like heuristic-v1, the run-level decision is in the record even when it is to wait.
            dormant = sum(1 for view in observation.seeds if view.stage == lifecycle_pb2.SEED_STAGE_DORMANT)
            why = f"policy {self._policy_id}: no germination this boundary ({dormant} dormant seeds wait)"
            out.wait("", why)

    def _command(
        self,
        state: RunState,
        observation: Observation,
        seed_id: str,
        stage: lifecycle_pb2.SeedStage,
        choice: int,
        why: str,
        out: StepOutcome,
    ) -> None:
        adaptation = state.adaptations[seed_id]
        target = _S.SEED_STAGE_UNSPECIFIED
        outcome: Outcome | None = None
        command_type: CommandType
        if choice == ADVANCE:
            command_type, target = _S.COMMAND_TYPE_ADVANCE, _NEXT_STAGE[stage]
            why += f": {stage_name(stage)} -> {stage_name(target)}"
        elif choice == CULL and stage in _CANCELLABLE:
            command_type, outcome = _S.COMMAND_TYPE_CANCEL_GERMINATION, _S.ADAPTATION_OUTCOME_CANCELLED
            why += f": cancel in {stage_name(stage)}"
        elif choice == CULL:
            command_type, outcome = _S.COMMAND_TYPE_CULL, _S.ADAPTATION_OUTCOME_CULLED
            why += (
                f": {observation.shown(observation.score)} vs {observation.shown(adaptation.pre_metric)} at germination"
            )
        elif choice == FOSSILIZE:
            command_type, outcome = _S.COMMAND_TYPE_FOSSILIZE, _S.ADAPTATION_OUTCOME_FOSSILIZED
            why += (
                f": {observation.shown(observation.score)} vs {observation.shown(adaptation.pre_metric)} "
                f"at germination, "
                f"eval gain {adaptation.eval_gain:+.4f}"
            )
        else:
            raise ForbiddenDecision(f"no command for {ACTIONS[choice]}")
        final = target if command_type == _S.COMMAND_TYPE_ADVANCE else _COMMAND_TARGET[command_type]
        if not is_legal(stage, final):
            raise ForbiddenDecision(f"{stage_name(stage)} -> {stage_name(final)} is not a legal transition")
        out.act(make_command(observation.boundary, seed_id, command_type, why, target_stage=target))
        if outcome is not None:
            view = observation.seeds[observation.rows[seed_id]]
            parameters = int(view.telemetry.parameter_count) if view.telemetry is not None else None
            self._gates.finish(state, observation, adaptation, outcome, why, out, parameter_count=parameters)


def veto(action: Action, context: DecisionContext) -> None:
    """Raise ForbiddenDecision for any choice the mask or the budgets forbid (the veto)."""
    why = actions_legal(context.mask, context.free_slots, action.seed_actions)
    if why:
        raise ForbiddenDecision(why)
    if GERMINATE in action.seed_actions:
        if action.kernel_row < 0 or not context.kernel_mask[action.kernel_row]:
            raise ForbiddenDecision("a germination without a kernel in budget")
        if action.germinate_row not in context.candidates[action.kernel_row].seed_rows:
            raise ForbiddenDecision("the kernel does not fit the seed's site")


def _cause(error: Exception) -> str:
    if isinstance(error, PolicyOutputError):
        return "non_finite"
    if isinstance(error, ForbiddenDecision):
        return "forbidden"
    if isinstance(error, PolicyTimeout):
        return "timeout"
    return "error"


def _step_seed(seed: int, observation: Observation) -> int:
    """A sampling seed per epoch, so an exploring run repeats with its seed (run ids are random)."""
    import zlib

    return zlib.crc32(f"{seed}/{observation.epoch}".encode()) & 0x7FFFFFFF
