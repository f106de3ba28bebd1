"""One boundary made ready for a decision: bookkeeping first, then what a policy may choose from.

`prepare_boundary` is the part of a step every policy shares: it tracks the validation score,
finishes the adaptations Kasmina ended, notes seeds Tamiyo does not own and
updates conservative mode. `decision_context` then gathers what a learned policy
reads and may choose: the kernel candidates (every validated kernel at the sites
open to germination, within the kernel budget), the legal-action mask and the
observation graph. The controller builds the same context for heuristic steps, so
a recorded transition always shows what the heuristic saw and could have done.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.features import max_parameters
from esper.tamiyo.gates import LifecycleGates
from esper.tamiyo.germination import kernel_parameter_budget
from esper.tamiyo.graph import KernelCandidate, ObservationGraph, build_graph
from esper.tamiyo.kernels import KernelDirectory, KernelQueryFailed, KernelSearch, validated_kernels
from esper.tamiyo.masks import action_mask, germinable_rows, germination_window
from esper.tamiyo.observation import Observation, StepOutcome
from esper.tamiyo.policy import note_untracked, update_conservative
from esper.tamiyo.state import RunState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionContext:
    """What a policy chooses from at one boundary.

    `mask` [seeds, 5] holds the legal actions (masks.py); `kernel_mask` [kernels]
    the candidates within the whole-model parameter budget; `free_slots` the
    concurrency slots free before this boundary's decisions (a germination needs
    one; each seed ended now frees one). `query_error` says why no kernel could be
    asked for, when that happened.
    """

    graph: ObservationGraph
    mask: np.ndarray
    candidates: tuple[KernelCandidate, ...]
    kernel_mask: np.ndarray
    free_slots: int = 0
    finished: frozenset[str] = field(default_factory=frozenset)
    query_error: str = ""

    def kernels_for(self, row: int) -> list[int]:
        """Candidate indices a germination of seed `row` may use."""
        return [k for k, c in enumerate(self.candidates) if row in c.seed_rows and self.kernel_mask[k]]


@dataclass
class DecisionRecord:
    """What a policy saw and chose at one boundary: the context, each seed's action (a mask
    column), the kernel candidate row of a germination (-1 for none), log-probability, value."""

    context: DecisionContext
    seed_actions: np.ndarray
    kernel_row: int = -1
    log_prob: float = 0.0
    value: float = 0.0


def prepare_boundary(
    gates: LifecycleGates, config: TamiyoConfig, state: RunState, observation: Observation, out: StepOutcome
) -> float | None:
    """The bookkeeping every policy does first; returns the previous boundary's score (None at the first).

    Scores are the run's validation metric oriented so that higher is better (Boundary), as
    heuristic-v1 reads them. Non-finite metrics ask for an emergency rollback and skip the tracking.
    """
    previous = state.last_val_score if state.stepped else None
    if not observation.finite:
        reason = (
            f"non-finite metrics (training loss {observation.training_loss}, validation loss "
            f"{observation.validation_loss}, {observation.shown(observation.score)}): emergency rollback"
        )
        out.request_rollback(reason)
        out.wait("", reason)
    else:
        state.metric_direction = observation.boundary.metric_direction
        state.observe_score(observation.score, config.min_delta)
        gates.track(state, observation, out)
        note_untracked(state, observation, out)
    update_conservative(config, state, observation, out)
    return previous


def decision_context(
    config: TamiyoConfig,
    state: RunState,
    observation: Observation,
    kernels: KernelDirectory | None,
    *,
    finished: frozenset[str] = frozenset(),
    previous_score: float | None = None,
) -> DecisionContext:
    """Candidates, mask and graph for a prepared boundary."""
    rows = germinable_rows(state, observation, config, finished)
    candidates: list[KernelCandidate] = []
    error = ""
    if rows and kernels is not None:
        try:
            candidates = _candidates(config, observation, kernels, rows)
        except KernelQueryFailed as exc:
            logger.warning("run %s: kernel query failed: %s", observation.boundary.run_id, exc)
            error = str(exc)
    budget = max_parameters(config)
    kernel_mask = np.array(
        [not budget or observation.model_parameters + c.kernel.parameter_count <= budget for c in candidates],
        dtype=np.bool_,
    )
    with_kernels = {row for k, c in enumerate(candidates) if kernel_mask[k] for row in c.seed_rows}
    mask = action_mask(state, observation, config, with_kernels, finished)
    graph = build_graph(observation, state, config, candidates, previous_score=previous_score)
    return DecisionContext(
        graph=graph,
        mask=mask,
        candidates=tuple(candidates),
        kernel_mask=kernel_mask,
        free_slots=germination_window(state, observation, config).free_slots,
        finished=finished,
        query_error=error,
    )


def _candidates(
    config: TamiyoConfig, observation: Observation, kernels: KernelDirectory, rows: list[int]
) -> list[KernelCandidate]:
    """One query per distinct site among `rows`; each kernel fits every seed row of its site."""
    layout = observation.layout
    sites: dict[tuple[int, tuple[int, ...], int, tuple[int, ...]], list[int]] = defaultdict(list)
    for row in rows:
        sites[layout.sites[row]].append(row)
    search = KernelSearch(
        directory=kernels,
        tag_ladder=((),),
        max_parameter_count=kernel_parameter_budget(config, observation.model_parameters),
        page_size=config.kernel_page_size,
        max_candidates=config.max_kernel_candidates,
        device_kind=observation.device_kind,
    )
    found: list[KernelCandidate] = []
    for site_rows in sites.values():
        descriptor = observation.seeds[site_rows[0]].descriptor
        for kernel in validated_kernels(search, descriptor):
            found.append(KernelCandidate(kernel=kernel, seed_rows=tuple(site_rows)))
    return found
