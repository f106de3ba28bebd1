"""Degenerate policies, the two ways a controller hacks a growth reward: never grow, grow everything.

They run the same lifecycle gates as heuristic-v1 and differ only in germination:
  never-germinate   never germinates (the run is its own static twin);
  germinate-all     from the end of the warm-up, germinates every seed a free slot
                    allows at every boundary, each with the largest kernel in budget.
The reward must rank both below heuristic-v1 (tests and docs/policy.md show it does).
"""

from __future__ import annotations

import dataclasses

from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.context import decision_context
from esper.tamiyo.gates import LifecycleGates
from esper.tamiyo.germination import Germination
from esper.tamiyo.kernels import KernelChoice, KernelDirectory
from esper.tamiyo.observation import ACTIVE_STAGES, Observation, StepOutcome
from esper.tamiyo.policy import HeuristicPolicy, Policy, note_untracked, update_conservative
from esper.tamiyo.state import RunState

NEVER_GERMINATE = "never-germinate"
GERMINATE_ALL = "germinate-all"


class NeverGerminate:
    """heuristic-v1 in permanent conservative mode: it never germinates."""

    def __init__(self, config: TamiyoConfig) -> None:
        self._inner = HeuristicPolicy(dataclasses.replace(config, conservative_mode=True))

    @property
    def policy_id(self) -> str:
        return NEVER_GERMINATE

    def decide(self, state: RunState, observation: Observation, kernels: KernelDirectory | None) -> StepOutcome:
        return self._inner.decide(state, observation, kernels)


class GerminateAll:
    """heuristic-v1's gates, and every free slot filled with the largest kernel at every boundary."""

    def __init__(self, config: TamiyoConfig) -> None:
        self._config = config
        self._gates = LifecycleGates(config)
        self._germination = Germination(config)

    @property
    def policy_id(self) -> str:
        return GERMINATE_ALL

    def decide(self, state: RunState, observation: Observation, kernels: KernelDirectory | None) -> StepOutcome:
        out = StepOutcome(epoch=observation.epoch)
        if not observation.finite:
            out.request_rollback("non-finite metrics: emergency rollback")
        else:
            state.metric_direction = observation.boundary.metric_direction
            state.observe_score(observation.score, self._config.min_delta)
            self._gates.run(state, observation, out)
            note_untracked(state, observation, out)
        update_conservative(self._config, state, observation, out)
        if observation.finite:
            self._fill(state, observation, kernels, out)
        state.last_epoch = observation.epoch
        state.stepped = True
        return out

    def _fill(
        self, state: RunState, observation: Observation, kernels: KernelDirectory | None, out: StepOutcome
    ) -> None:
        context = decision_context(self._config, state, observation, kernels, finished=frozenset(out.finished_seeds))
        busy = sum(
            1
            for view in observation.seeds
            if view.seed_id in state.adaptations
            or (view.stage in ACTIVE_STAGES and view.seed_id not in out.finished_seeds)
        )
        free = self._config.max_concurrent_seeds - busy
        for row in map(int, context.mask[:, 1].nonzero()[0]):
            if free <= 0:
                return
            options = context.kernels_for(row)
            if not options:
                continue
            best = max(
                options, key=lambda k: (context.candidates[k].kernel.parameter_count, context.graph.kernel_ids[k])
            )
            kernel = context.candidates[best].kernel
            view = observation.seeds[row]
            self._germination.germinate(
                state,
                observation,
                view,
                KernelChoice(kernel=kernel, tags=(), reason=f"largest kernel {kernel.kernel_id}"),
                "germinate-all: every free slot, at once",
                out,
            )
            free -= 1


BASELINES: dict[str, type[NeverGerminate] | type[GerminateAll]] = {
    NEVER_GERMINATE: NeverGerminate,
    GERMINATE_ALL: GerminateAll,
}


def baseline_policy(policy_id: str, config: TamiyoConfig) -> Policy | None:
    """The degenerate policy of that id, or None if it names none."""
    found = BASELINES.get(policy_id)
    return found(config) if found is not None else None
