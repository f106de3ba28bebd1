"""The strategic controller: the TamiyoService API in process.

`TamiyoController(model_or_none, config, *, kernels=None)` is the SDK's controller
(README.md, "The SDK"). It keeps one RunState per run id (from the packet), so one
controller serves several runs. A step is a transaction: the policy works on a copy
of the run's state, which replaces the old one only once the answer is complete.

Steps are idempotent per run: repeating the last request (a client retry) returns
the same response without deciding twice. Any other request for an epoch that is
not after the last one stepped is refused: after a rollback, restore the controller
state from the same checkpoint first.

Policies: the configuration's `policy_id` decides from the start. `load_policy` pins
another one (heuristic-v1, a shipped one, or Simic's through `policies`); with
`follow_updates` the controller instead takes every policy Simic publishes
(`on_policy_update`). A swap waits for the step in progress: policies change
between boundaries only. With a `transitions` sink, every step's transition goes
there (policy failures never fail a step; neither does a sink that refuses).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

from esper.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from esper.leyline.v1 import control_pb2, lifecycle_pb2, simic_pb2, tamiyo_pb2, telemetry_pb2
from esper.observability import metrics
from esper.observability.spans import esper_attributes, tracer
from esper.state import SeedFeatures
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.convert import (
    observation_from_request,
    response_from_outcome,
    state_from_proto,
    state_to_proto,
)
from esper.tamiyo.kernels import KernelDirectory, RecentKernels
from esper.tamiyo.observation import ACTIVE_STAGES, Observation, SeedLayout, SeedView, StepOutcome
from esper.tamiyo.policies import PolicySource, artifact_from_update, learned_policy, make_policy
from esper.tamiyo.policy import Policy
from esper.tamiyo.requests import (
    check_export_controller_state,
    check_get_status,
    check_load_policy,
    check_restore_controller_state,
    check_step,
)
from esper.tamiyo.state import RunState
from esper.tamiyo.transitions import TransitionSink, make_transition, shadow_record

logger = logging.getLogger(__name__)
_TRACER = tracer(__name__)

# Runs whose latest seed telemetry is kept (observe_telemetry); the least recently updated go first.
MAX_OBSERVED_RUNS = 1024
_NO_FEATURES = SeedFeatures("", lifecycle_pb2.SEED_STAGE_UNSPECIFIED, 0.0, 0.0, 0.0, 0.0, 0, False)


class ParameterSource(Protocol):
    """A model whose trainable parameters can be counted (an nn.Module fits)."""

    def parameters(self) -> Iterable[Any]: ...


class TamiyoController:
    """Decides at each epoch boundary what every seed should do (TamiyoService in process).

    `model` is only used to count trainable parameters when a StepRequest carries no
    `parameter_count` (the kernel size budget is relative to it). `kernels` is where
    validated kernels are queried; `attach_kernels` supplies it later. `policies` is
    where Simic's policies are fetched, `transitions` where each step's transition
    goes; `policy` overrides the configuration's (Simic's episodes explore with it).
    """

    def __init__(
        self,
        model: ParameterSource | None = None,
        config: TamiyoConfig | None = None,
        *,
        kernels: KernelDirectory | None = None,
        policies: PolicySource | None = None,
        transitions: TransitionSink | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.config = config if config is not None else TamiyoConfig()
        self._model = model
        self._kernels = self._remembering(kernels)
        self._policies = policies
        self._transitions = transitions
        self._policy: Policy = (
            policy if policy is not None else make_policy(self.config.policy_id, self.config, policies)
        )
        self._pinned = True
        self._fallbacks = 0
        self._runs: dict[str, RunState] = {}
        self._last_step: dict[str, tuple[bytes, tamiyo_pb2.StepResponse]] = {}
        self._layouts: dict[str, tuple[tuple[int, int], SeedLayout]] = {}
        self._observed: OrderedDict[str, dict[str, telemetry_pb2.SeedTelemetry]] = OrderedDict()
        self._lock = threading.Lock()

    def attach_kernels(self, directory: KernelDirectory) -> None:
        """Use `directory` to find kernels from the next step on."""
        with self._lock:
            self._kernels = self._remembering(directory)

    def _remembering(self, directory: KernelDirectory | None) -> KernelDirectory | None:
        if directory is None or self.config.kernel_cache_seconds <= 0:
            return directory
        return RecentKernels(directory, self.config.kernel_cache_seconds)

    def attach_transitions(self, sink: TransitionSink | None) -> None:
        """Send every step's transition to `sink` from the next step on (None: stop)."""
        with self._lock:
            self._transitions = sink

    @property
    def policy_id(self) -> str:
        return self._policy.policy_id

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        """One epoch boundary's decisions, as the span `tamiyo.step` (each decision an event with its reason)."""
        packet = request.packet
        with _TRACER.start_as_current_span(
            "tamiyo.step", attributes=esper_attributes(run_id=packet.run_id, epoch=packet.epoch)
        ) as span:
            response = self._step(request)
            for decision in response.decisions:
                span.add_event(
                    "decision",
                    {
                        "esper.seed_id": decision.seed_id,
                        "esper.command_id": decision.command_id,
                        "esper.action": decision_action(decision.command_type),
                        "esper.reason": decision.reason,
                    },
                )
            return response

    def _step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        step_started = time.perf_counter()
        features = check_step(request, max_seeds=self.config.max_seeds_per_run)
        run_id, epoch = request.packet.run_id, request.packet.epoch
        key = request.SerializeToString(deterministic=True)
        with self._lock:
            last = self._last_step.get(run_id)
            if last is not None and last[0] == key:
                return _copy(last[1])
            previous = self._runs.get(run_id)
            if previous is not None and previous.stepped and epoch <= previous.last_epoch:
                raise FailedPrecondition(
                    f"run {run_id!r}: epoch {epoch} is not after the last stepped epoch "
                    f"{previous.last_epoch}; "
                    "restore the controller state saved with the checkpoint to step it again"
                )
            state = copy.deepcopy(previous) if previous is not None else RunState(run_id=run_id)
            model_parameters = self._model_parameters() if request.parameter_count == 0 else 0
            observation = observation_from_request(
                request, features, model_parameters=model_parameters, layout=self._layout(request)
            )
            before = copy.deepcopy(state) if self._transitions is not None else None
            started = time.perf_counter()
            outcome = self._policy.decide(state, observation, self._kernels)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            if outcome.fallback_reason:
                self._fallbacks += 1
            state.commands_issued += len(outcome.commands)
            if len(state.embargo_until) > self.config.max_seeds_per_run:
                raise ResourceExhausted(
                    f"run {run_id!r} has presented more than {self.config.max_seeds_per_run} seeds; "
                    "Tamiyo remembers at most that many per run"
                )
            response = response_from_outcome(outcome, conservative_mode=state.conservative_mode)
            self._remember(run_id, state, (key, _copy(response)))
            if before is not None:
                self._record_transition(before, observation, outcome)
        if elapsed_ms > self.config.step_budget_ms:
            logger.warning(
                "run %s epoch %d: step took %.1f ms (budget %.1f ms)",
                run_id,
                epoch,
                elapsed_ms,
                self.config.step_budget_ms,
            )
        for decision in response.decisions:
            logger.debug("run %s epoch %d seed %r: %s", run_id, epoch, decision.seed_id, decision.reason)
            metrics.TAMIYO_DECISIONS.labels(action=decision_action(decision.command_type)).inc()
        metrics.TAMIYO_STEP_DURATION.observe(time.perf_counter() - step_started)
        return response

    def _layout(self, request: tamiyo_pb2.StepRequest) -> SeedLayout | None:
        """The run's layout as arrays, kept while its seeds stay the same (a layout is static
        for a run: a seed id never changes place or shape; regrowth adds seeds, a new layout)."""
        key = (request.packet.layout_hash, len(request.seed_layout))
        known = self._layouts.get(request.packet.run_id)
        if known is not None and known[0] == key:
            return known[1]
        seeds = tuple(SeedView(descriptor=d, features=_NO_FEATURES, telemetry=None) for d in request.seed_layout)
        layout = SeedLayout.of(seeds)
        self._layouts[request.packet.run_id] = (key, layout)
        while len(self._layouts) > MAX_OBSERVED_RUNS:
            self._layouts.pop(next(iter(self._layouts)))
        return layout

    def _record_transition(self, before: RunState, observation: Observation, outcome: StepOutcome) -> None:
        """Hand the step's transition to the sink; a failure here is logged, never the step's."""
        sink = self._transitions
        if sink is None:
            return
        policy = self._policy
        version = int(getattr(policy, "version", 0))
        try:
            record = outcome.record
            if record is None:
                record = shadow_record(self.config, before, observation, self._kernels, outcome)
            transition = make_transition(
                observation,
                record,
                policy_id=policy.policy_id,
                policy_version=version,
                fallback_reason=outcome.fallback_reason,
            )
            sink.record(transition)
        except Exception as exc:  # experience is best effort; the run's decisions stand
            logger.warning(
                "run %s epoch %d: transition not recorded: %s", observation.boundary.run_id, observation.epoch, exc
            )

    def observe_telemetry(self, telemetry: telemetry_pb2.SeedTelemetry) -> bool:
        """Keep a seed's telemetry if it is its newest (by epoch, then step); False if it was not kept.

        Telemetry seen on the bus only informs get_status: a step decides on the
        telemetry in its request, so decisions are the same with or without the bus.
        """
        if not telemetry.run_id or not telemetry.seed_id:
            return False
        with self._lock:
            seeds = self._observed.setdefault(telemetry.run_id, {})
            self._observed.move_to_end(telemetry.run_id)
            kept = seeds.get(telemetry.seed_id)
            if kept is not None and (kept.epoch, kept.global_step) > (telemetry.epoch, telemetry.global_step):
                return False
            newest = telemetry_pb2.SeedTelemetry()
            newest.CopyFrom(telemetry)
            seeds[telemetry.seed_id] = newest
            while len(self._observed) > MAX_OBSERVED_RUNS:
                self._observed.popitem(last=False)
            return True

    def observed_telemetry(self, run_id: str) -> list[telemetry_pb2.SeedTelemetry]:
        """The newest telemetry observed for each seed of a run, by seed id."""
        with self._lock:
            seeds = self._observed.get(run_id, {})
            return [_copy_telemetry(seeds[seed_id]) for seed_id in sorted(seeds)]

    def get_status(self, request: tamiyo_pb2.GetStatusRequest) -> tamiyo_pb2.GetStatusResponse:
        check_get_status(request)
        with self._lock:
            tracked = len(self._runs.keys() | self._observed.keys())
            if not request.run_id:
                return tamiyo_pb2.GetStatusResponse(
                    active_adaptations=sum(len(state.adaptations) for state in self._runs.values()),
                    conservative_mode=any(state.conservative_mode for state in self._runs.values()),
                    tracked_runs=tracked,
                    **self._policy_status(),
                )
            observed = self._observed.get(request.run_id, {})
            observed_epoch = max((t.epoch for t in observed.values()), default=0)
            if request.run_id not in self._runs and observed:
                return tamiyo_pb2.GetStatusResponse(
                    current_epoch=observed_epoch,
                    active_adaptations=sum(t.stage in ACTIVE_STAGES for t in observed.values()),
                    conservative_mode=self.config.conservative_mode,
                    tracked_runs=tracked,
                    **self._policy_status(),
                )
            state = self._run(request.run_id)
            return tamiyo_pb2.GetStatusResponse(
                current_epoch=max(state.last_epoch, observed_epoch),
                validation_accuracy=state.last_val_score
                if state.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
                else 0.0,
                active_adaptations=len(state.adaptations),
                conservative_mode=state.conservative_mode,
                tracked_runs=tracked,
                **self._policy_status(),
            )

    def _policy_status(self) -> dict[str, Any]:
        return {
            "policy_id": self._policy.policy_id,
            "policy_version": int(getattr(self._policy, "version", 0)),
            "policy_fallbacks": self._fallbacks,
            "policy_pinned": self._pinned,
        }

    def load_policy(self, request: tamiyo_pb2.LoadPolicyRequest) -> tamiyo_pb2.LoadPolicyResponse:
        """Pin a policy, or (`follow_updates`) take Simic's published ones from now on.

        NotFound (POLICY_NOT_FOUND) for a policy nothing knows; FailedPrecondition when a
        learned policy cannot be loaded (its feature schema or weights do not fit).
        """
        check_load_policy(request)
        policy = make_policy(request.policy_id, self.config, self._policies) if request.policy_id else None
        with self._lock:
            if policy is not None:
                self._policy = policy
            self._pinned = not request.follow_updates
            logger.info(
                "policy %s v%d now decides (%s)",
                self._policy.policy_id,
                int(getattr(self._policy, "version", 0)),
                "following Simic's updates" if request.follow_updates else "pinned",
            )
            return tamiyo_pb2.LoadPolicyResponse(
                policy_id=self._policy.policy_id,
                policy_version=int(getattr(self._policy, "version", 0)),
                pinned=self._pinned,
            )

    def on_policy_update(self, update: control_pb2.PolicyUpdate) -> bool:
        """Take a policy Simic published, unless a policy is pinned; True if it now decides.

        The weights come from Simic (GetPolicy); the swap happens between two steps.
        """
        with self._lock:
            if self._pinned:
                logger.info("policy update %s v%d ignored: a policy is pinned", update.policy_id, update.version)
                return False
            current_version = int(getattr(self._policy, "version", 0))
            if self._policy.policy_id == update.policy_id and current_version >= update.version:
                return False
        if self._policies is None:
            raise FailedPrecondition(
                f"policy update {update.policy_id}: no Simic attached to fetch its weights", reason="NO_POLICY_SOURCE"
            )
        response = self._policies.get_policy(
            simic_pb2.GetPolicyRequest(policy_id=update.policy_id, include_weights=True)
        )
        if response.policy.sha256 != update.sha256:
            raise InvalidArgument.for_field(
                "sha256", f"policy {update.policy_id}: Simic serves other weights than the update announced"
            )
        policy = learned_policy(artifact_from_update(response.policy, response.weights), self.config)
        with self._lock:
            if self._pinned:
                return False
            self._policy = policy
        logger.info("policy %s v%d now decides (published by Simic)", update.policy_id, update.version)
        return True

    def export_controller_state(
        self, request: tamiyo_pb2.ExportControllerStateRequest
    ) -> tamiyo_pb2.ExportControllerStateResponse:
        check_export_controller_state(request)
        with self._lock:
            return tamiyo_pb2.ExportControllerStateResponse(state=state_to_proto(self._run(request.run_id)))

    def restore_controller_state(
        self, request: tamiyo_pb2.RestoreControllerStateRequest
    ) -> tamiyo_pb2.RestoreControllerStateResponse:
        check_restore_controller_state(request)
        state = state_from_proto(request.state)
        with self._lock:
            self._remember(state.run_id, state, None)
        logger.info("run %s: controller state restored at epoch %d", state.run_id, state.last_epoch)
        return tamiyo_pb2.RestoreControllerStateResponse(run_id=state.run_id)

    def _remember(self, run_id: str, state: RunState, last: tuple[bytes, tamiyo_pb2.StepResponse] | None) -> None:
        """Keep the run's state as the most recent; forget the least recently stepped past the bound.

        A forgotten run that steps again starts afresh (a restored checkpoint brings its state back).
        Lock held.
        """
        self._runs.pop(run_id, None)
        self._last_step.pop(run_id, None)
        self._runs[run_id] = state
        if last is not None:
            self._last_step[run_id] = last
        while len(self._runs) > self.config.max_tracked_runs:
            oldest = next(iter(self._runs))
            del self._runs[oldest]
            self._last_step.pop(oldest, None)
            self._layouts.pop(oldest, None)
            logger.info("run %s forgotten: Tamiyo keeps the %d most recent runs", oldest, self.config.max_tracked_runs)

    def _run(self, run_id: str) -> RunState:
        state = self._runs.get(run_id)
        if state is None:
            raise NotFound(f"run {run_id!r} is not tracked by this controller", reason="RUN_NOT_FOUND")
        return state

    def _model_parameters(self) -> int:
        if self._model is None:
            return 0
        return sum(int(p.numel()) for p in self._model.parameters() if p.requires_grad)


def decision_action(command_type: int) -> str:
    """The action of a decision: its CommandType name without the prefix, or WAIT when it issued none."""
    if command_type == lifecycle_pb2.COMMAND_TYPE_UNSPECIFIED:
        return "WAIT"
    return lifecycle_pb2.CommandType.Name(command_type).removeprefix("COMMAND_TYPE_")


def _copy(response: tamiyo_pb2.StepResponse) -> tamiyo_pb2.StepResponse:
    duplicate = tamiyo_pb2.StepResponse()
    duplicate.CopyFrom(response)
    return duplicate


def _copy_telemetry(telemetry: telemetry_pb2.SeedTelemetry) -> telemetry_pb2.SeedTelemetry:
    duplicate = telemetry_pb2.SeedTelemetry()
    duplicate.CopyFrom(telemetry)
    return duplicate
