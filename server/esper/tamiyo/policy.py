"""Tamiyo's policies. The heuristic policy ("heuristic-v1") is the only one built in.

One step of the heuristic, in order:
  1. Non-finite losses: ask Tolaria for an emergency rollback and decide nothing else
     (the rolled-back seeds are reported when they are next seen ROLLED_BACK).
  2. Track the best validation score (plateau detection; any metric, see Boundary).
  3. Apply the lifecycle gates to every seed being adapted (gates.py).
  4. Update conservative mode; every switch is a decision with its reason.
  5. Consider germinating one seed (germination.py).
The policy is deterministic: the same state and observation give the same answer.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from esper.tamiyo.config import HEURISTIC_POLICY_ID, TamiyoConfig
from esper.tamiyo.gates import LifecycleGates
from esper.tamiyo.germination import Germination
from esper.tamiyo.kernels import KernelDirectory
from esper.tamiyo.observation import ACTIVE_STAGES, Observation, StepOutcome, stage_name
from esper.tamiyo.state import RunState

_ACTIVE = np.array(sorted(ACTIVE_STAGES), dtype=np.int64)


class Policy(Protocol):
    """Decides one epoch boundary for one run, updating the run's state."""

    @property
    def policy_id(self) -> str: ...

    def decide(self, state: RunState, observation: Observation, kernels: KernelDirectory | None) -> StepOutcome: ...


class HeuristicPolicy:
    """Threshold rules over the packet and telemetry (heuristic-v1, docs/lifecycle.md)."""

    def __init__(self, config: TamiyoConfig) -> None:
        self._config = config
        self._gates = LifecycleGates(config)
        self._germination = Germination(config)

    @property
    def policy_id(self) -> str:
        return HEURISTIC_POLICY_ID

    def decide(self, state: RunState, observation: Observation, kernels: KernelDirectory | None) -> StepOutcome:
        out = StepOutcome(epoch=observation.epoch)
        if not observation.finite:
            reason = (
                f"non-finite metrics (training loss {observation.training_loss}, validation loss "
                f"{observation.validation_loss}, {observation.shown(observation.score)}): emergency rollback"
            )
            out.request_rollback(reason)
            out.wait("", reason)
        else:
            state.metric_direction = observation.boundary.metric_direction
            state.observe_score(observation.score, self._config.min_delta)
            self._gates.run(state, observation, out)
            note_untracked(state, observation, out)
        update_conservative(self._config, state, observation, out)
        if observation.finite:
            self._germination.consider(state, observation, kernels, out)
        state.last_epoch = observation.epoch
        state.stepped = True
        return out


def note_untracked(state: RunState, observation: Observation, out: StepOutcome) -> None:
    """A wait decision for each active seed Tamiyo did not germinate: it is left alone."""
    for row in np.flatnonzero(np.isin(observation.stages, _ACTIVE)).tolist():
        view = observation.seeds[row]
        untracked = view.seed_id not in state.adaptations and view.seed_id not in out.finished_seeds
        if untracked:
            out.wait(
                view.seed_id,
                f"seed is {stage_name(view.stage)} but Tamiyo did not germinate it; "
                "it holds a concurrency slot and is left alone",
            )


def update_conservative(config: TamiyoConfig, state: RunState, observation: Observation, out: StepOutcome) -> None:
    """Switch conservative mode on or off; every switch is a decision with its reason."""
    on, reason = _conservative_verdict(config, state, observation)
    if on != state.conservative_mode:
        state.conservative_mode = on
        out.wait("", f"conservative mode {'on' if on else 'off'}: {reason}")
    if state.conservative_mode:
        out.signal_reasons.append(f"conservative mode: {reason}")


def _conservative_verdict(config: TamiyoConfig, state: RunState, observation: Observation) -> tuple[bool, str]:
    epoch = observation.epoch
    failures = state.failure_epochs(config.embargo_epochs)
    recent = sorted(seed for seed, failed in failures.items() if epoch - failed < config.trouble_window_epochs)
    if config.conservative_mode:
        return True, "set by configuration"
    if not observation.finite:
        return True, "non-finite metrics"
    if len(recent) >= config.conservative_after_failures:
        return True, (
            f"{len(recent)} slots failed within the last {config.trouble_window_epochs} epochs "
            f"({', '.join(recent)}; threshold {config.conservative_after_failures})"
        )
    last = max(failures.values(), default=None)
    if last is None:
        return False, "no failure recorded"
    calm = epoch - last
    if state.conservative_mode and calm < config.calm_epochs:
        return True, f"{calm} of {config.calm_epochs} calm epochs since the failure at epoch {last}"
    return False, f"{calm} calm epochs since the last failure at epoch {last} (need {config.calm_epochs})"
