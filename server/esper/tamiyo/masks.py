"""Which decisions the lifecycle and the budgets allow, seed by seed.

A learned policy chooses only among legal actions; this module is where "legal"
is decided, the same way for every policy. Columns, in `SeedAction` order from
WAIT: WAIT, GERMINATE, ADVANCE, CULL, FOSSILIZE.

  DORMANT        GERMINATE when germination is open (finite metrics, no conservative
                 mode, past the warm-up, enough epochs left to finish, the parameter
                 budget not spent, the slot not embargoed, a kernel in budget) and a
                 concurrency slot is free once this boundary's decisions are taken:
                 `free_slots` may be 0 or less, and each seed culled, cancelled or
                 fossilized at the same boundary frees one (acting.py applies this).
  GERMINATED     ADVANCE (promote to LOADING again) or CULL (cancel).
  TRAINING       ADVANCE once the seed is ready after `min_training_epochs`; CULL (cancel).
  GRAFTING,      ADVANCE once ready. CULL is not a legal command here (docs/lifecycle.md).
  STABILIZATION
  EVALUATING     once measured: ADVANCE to FINE_TUNING (a trainable kernel) or FOSSILIZE
                 (a fixed-function one) only on a positive evaluation; CULL always.
  FINE_TUNING    CULL; FOSSILIZE only on a measured improvement (a validation score above
                 the score at germination plus `fossilize_min_improvement`, or an eval gain
                 above `min_eval_gain`).
A seed past its stage time-out may not wait (TRAINING and GERMINATED: cancel; EVALUATING:
cull; FINE_TUNING: fossilize or cull). Harm (a score below the score at germination by more
than `harm_threshold`, not excused by a positive eval gain) leaves only CULL from EVALUATING
on. Seeds Tamiyo did not germinate, terminal seeds and seeds in transit only WAIT.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from esper.leyline.v1 import lifecycle_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.features import max_parameters
from esper.tamiyo.observation import ACTIVE_STAGES, Observation, SeedView
from esper.tamiyo.state import Adaptation, RunState

WAIT, GERMINATE, ADVANCE, CULL, FOSSILIZE = range(5)
ACTIONS = ("WAIT", "GERMINATE", "ADVANCE", "CULL", "FOSSILIZE")
ACTION_COUNT = len(ACTIONS)

_S = lifecycle_pb2
_ACTIVE = np.array(sorted(ACTIVE_STAGES), dtype=np.int64)


@dataclass(frozen=True)
class GerminationWindow:
    """Whether germination is open at this boundary (concurrency aside) and, if not, why;
    concurrency slots free before this boundary's decisions (may be 0 or less)."""

    open: bool
    reason: str
    free_slots: int


def germination_window(state: RunState, observation: Observation, config: TamiyoConfig) -> GerminationWindow:
    """The run-level conditions for any germination, the budgets among them."""
    epoch = observation.epoch
    active = np.isin(observation.stages, _ACTIVE)
    for seed_id in state.adaptations:
        row = observation.rows.get(seed_id)
        if row is not None:
            active[row] = True
    busy = int(active.sum())
    free = config.max_concurrent_seeds - busy
    remaining = observation.final_epoch - epoch
    budget = max_parameters(config)
    checks = (
        (observation.finite, "metrics are not finite"),
        (not state.conservative_mode, "conservative mode"),
        (epoch >= config.warmup_epochs, f"warm-up (epoch {epoch} < {config.warmup_epochs})"),
        (
            not observation.final_epoch or remaining >= config.min_epochs_to_finish,
            f"{remaining} epoch(s) left, an adaptation needs {config.min_epochs_to_finish}",
        ),
        (not budget or observation.model_parameters < budget, f"parameter budget reached ({budget})"),
    )
    for ok, reason in checks:
        if not ok:
            return GerminationWindow(False, reason, free)
    return GerminationWindow(True, "open", free)


def germinable_rows(
    state: RunState, observation: Observation, config: TamiyoConfig, finished: Collection[str] = ()
) -> list[int]:
    """Rows of the seeds a germination could use now, before asking for kernels."""
    if not germination_window(state, observation, config).open:
        return []
    open_rows = observation.stages == _S.SEED_STAGE_DORMANT
    epoch = observation.epoch
    taken = [*state.adaptations, *finished, *(s for s in state.embargo_until if state.is_embargoed(s, epoch))]
    for seed_id in taken:
        row = observation.rows.get(seed_id)
        if row is not None:
            open_rows[row] = False
    return [int(row) for row in np.flatnonzero(open_rows)]


def action_mask(
    state: RunState,
    observation: Observation,
    config: TamiyoConfig,
    with_kernels: Collection[int],
    finished: Collection[str] = (),
) -> np.ndarray:
    """Legal actions [seeds, 5]; `with_kernels` are the rows that have a kernel in budget,
    `finished` the seeds whose adaptation ended at this boundary."""
    mask = np.zeros((len(observation.seeds), ACTION_COUNT), dtype=np.bool_)
    mask[:, WAIT] = True
    if not observation.finite:
        # Tolaria rolls the run back: nothing is decided on metrics that cannot be trusted.
        return mask
    open_rows = sorted(set(germinable_rows(state, observation, config, finished)) & set(with_kernels))
    mask[open_rows, GERMINATE] = True
    for seed_id, adaptation in state.adaptations.items():
        row = observation.rows.get(seed_id)
        if row is not None:
            _adaptation_mask(mask[row], observation.seeds[row], adaptation, observation, config)
    return mask


def _adaptation_mask(
    row: np.ndarray, view: SeedView, a: Adaptation, observation: Observation, config: TamiyoConfig
) -> None:
    stage, epoch = view.stage, observation.epoch
    in_stage = a.epochs_in_stage(epoch)
    timed_out = in_stage >= config.stage_timeout_epochs
    if stage == _S.SEED_STAGE_GERMINATED:
        row[ADVANCE] = not timed_out
        row[CULL] = True
        row[WAIT] = not timed_out
    elif stage == _S.SEED_STAGE_TRAINING:
        row[ADVANCE] = view.ready and in_stage >= config.min_training_epochs
        row[CULL] = True
        row[WAIT] = not timed_out
    elif stage in (_S.SEED_STAGE_GRAFTING, _S.SEED_STAGE_STABILIZATION):
        row[ADVANCE] = view.ready
    elif stage == _S.SEED_STAGE_EVALUATING:
        _evaluating_mask(row, view, a, observation, config, timed_out)
    elif stage == _S.SEED_STAGE_FINE_TUNING:
        _fine_tuning_mask(row, a, observation, config, timed_out)


def _evaluating_mask(
    row: np.ndarray, view: SeedView, a: Adaptation, observation: Observation, config: TamiyoConfig, timed_out: bool
) -> None:
    row[CULL] = True
    measured = view.ready and view.telemetry is not None
    gain = view.telemetry.eval_gain if measured and view.telemetry is not None else None
    if harmed(a, observation, config, gain):
        row[WAIT] = False
        return
    if gain is not None and gain > config.min_eval_gain:
        trainable = view.telemetry is not None and view.telemetry.parameter_count > 0
        row[ADVANCE if trainable else FOSSILIZE] = True
    row[WAIT] = not timed_out and not measured


def _fine_tuning_mask(
    row: np.ndarray, a: Adaptation, observation: Observation, config: TamiyoConfig, timed_out: bool
) -> None:
    row[CULL] = True
    if harmed(a, observation, config, a.eval_gain):
        row[WAIT] = False
        return
    row[FOSSILIZE] = improved(a, observation, config)
    row[WAIT] = not timed_out


def harmed(a: Adaptation, observation: Observation, config: TamiyoConfig, eval_gain: float | None) -> bool:
    """Accuracy fell past the harm threshold since germination, and the seed's own gain does not excuse it."""
    drop = a.pre_metric - observation.score
    if drop <= config.harm_threshold:
        return False
    return not (eval_gain is not None and eval_gain > config.min_eval_gain)


def improved(a: Adaptation, observation: Observation, config: TamiyoConfig) -> bool:
    """The measured improvement that allows fossilizing."""
    target = a.pre_metric + config.fossilize_min_improvement
    return observation.score >= target or a.eval_gain > config.min_eval_gain


def actions_legal(mask: np.ndarray, free_slots: int, seed_actions: np.ndarray) -> str:
    """Why these actions break the mask or the concurrency budget, or "" when they are legal."""
    rows = np.arange(len(seed_actions))
    illegal = np.flatnonzero(~mask[rows, seed_actions])
    if illegal.size:
        return f"action {int(seed_actions[illegal[0]])} is not legal for seed row {int(illegal[0])}"
    germinations = int((seed_actions == GERMINATE).sum())
    if germinations > 1:
        return f"{germinations} germinations at one boundary"
    freed = int(((seed_actions == CULL) | (seed_actions == FOSSILIZE)).sum())
    if germinations and free_slots + freed <= 0:
        return f"no concurrency slot free for a germination ({free_slots} free, {freed} freed now)"
    return ""
