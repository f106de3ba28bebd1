"""When and where to germinate a seed, and with which kernel.

Germination is considered when validation accuracy has plateaued (after the warm-up),
conservative mode is off and fewer seeds than the budget are active. Among the
DORMANT, non-embargoed seeds the one with the strongest bottleneck signal is chosen.

Bottleneck score, in [0, 3]: each feature is min-max normalised across the candidate
seeds (a feature equal on all of them scores 0), so layers of different scale compare:
  dead_node_ratio   high = units that never fire (capacity wasted),
  avg_correlation   high = redundant units,
  chunk_variance    low  = collapsed features (scored as (max - v) / (max - min)).
Ties go to the earlier seed in layout order. If no validated kernel fits the chosen
seed's site, the next seed with a different site is tried.

When the layout has width seeds, layers are chosen by the growth rules instead
(esper.tamiyo.growth): widen narrow or unhealthy layers, deepen healthy ones. In
every case the model never grows past `max_parameters`, and nothing germinates once
growth has stopped paying.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from esper.leyline.v1 import blueprint_pb2, kernel_pb2, lifecycle_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.growth import GrowthOption, growth_options, growth_paid, growth_stopped, has_width_seeds
from esper.tamiyo.issued import make_command
from esper.tamiyo.kernels import (
    KernelChoice,
    KernelDirectory,
    KernelQueryFailed,
    KernelSearch,
    choose_kernel,
    site_label,
    tag_ladder,
)
from esper.tamiyo.observation import ACTIVE_STAGES, Observation, SeedView, StepOutcome
from esper.tamiyo.state import Adaptation, RunState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BottleneckScore:
    """A candidate seed's score and its normalised parts."""

    view: SeedView
    score: float
    dead: float
    redundant: float
    collapsed: float

    def describe(self) -> str:
        f = self.view.features
        return (
            f"bottleneck {self.score:.2f} (dead {f.dead_node_ratio:.3f}, "
            f"correlation {f.avg_correlation:.3f}, variance {f.chunk_variance:.4g})"
        )


def bottleneck_ranking(candidates: Sequence[SeedView]) -> list[BottleneckScore]:
    """Candidates strongest bottleneck first; ties in layout (input) order."""

    def spread(values: list[float]) -> tuple[float, float]:
        return min(values, default=0.0), max(values, default=0.0)

    dead_lo, dead_hi = spread([v.features.dead_node_ratio for v in candidates])
    corr_lo, corr_hi = spread([v.features.avg_correlation for v in candidates])
    var_lo, var_hi = spread([v.features.chunk_variance for v in candidates])
    scores = []
    for view in candidates:
        f = view.features
        dead = _normalise(f.dead_node_ratio - dead_lo, dead_hi - dead_lo)
        redundant = _normalise(f.avg_correlation - corr_lo, corr_hi - corr_lo)
        collapsed = _normalise(var_hi - f.chunk_variance, var_hi - var_lo)
        scores.append(BottleneckScore(view, dead + redundant + collapsed, dead, redundant, collapsed))
    order = {view.seed_id: index for index, view in enumerate(candidates)}
    return sorted(scores, key=lambda s: (-s.score, order[s.view.seed_id]))


def _normalise(offset: float, width: float) -> float:
    return offset / width if width > 0 else 0.0


class Germination:
    """Decides whether to germinate at this boundary, and does so."""

    def __init__(self, config: TamiyoConfig) -> None:
        self._config = config

    def consider(
        self, state: RunState, observation: Observation, kernels: KernelDirectory | None, out: StepOutcome
    ) -> None:
        config, epoch = self._config, observation.epoch
        if epoch < config.warmup_epochs:
            out.wait("", f"no germination during warm-up (epoch {epoch} < {config.warmup_epochs})")
            return
        if state.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED and state.last_val_score >= 1.0:
            # An accuracy run that validates perfectly: a seed can only add parameters, and on
            # spirals such growth cost test accuracy the validation set could not see.
            out.wait("", "no germination: validation accuracy is 100 %, growth has nothing left to gain")
            return
        remaining = observation.final_epoch - epoch
        if observation.final_epoch and remaining < config.min_epochs_to_finish:
            out.wait(
                "",
                f"no germination: {remaining} epoch(s) left, an adaptation needs "
                f"{config.min_epochs_to_finish} to finish",
            )
            return
        progress = (
            f"best {observation.shown(state.best_val_score)}, {state.epochs_since_improvement} of "
            f"{config.patience} epochs without a gain > {config.min_delta}"
        )
        on_plateau = state.epochs_since_improvement >= config.patience
        if not on_plateau and not (config.widen_without_plateau and has_width_seeds(observation)):
            out.wait("", f"no plateau: {progress}")
            return
        plateau = f"plateau ({progress})" if on_plateau else f"no plateau yet ({progress})"
        if state.conservative_mode:
            out.wait("", f"{plateau}; conservative mode: no new germination")
            return
        stopped = growth_stopped(config, state)
        if stopped:
            out.wait("", f"{plateau}; {stopped}: no new germination")
            return
        if config.max_parameters and observation.model_parameters >= config.max_parameters:
            out.wait(
                "",
                f"{plateau}; parameter budget reached: the model has {observation.model_parameters} of "
                f"{config.max_parameters} parameters",
            )
            return
        busy = self._busy_seeds(state, observation, out)
        if len(busy) >= config.max_concurrent_seeds:
            out.wait(
                "",
                f"{plateau}; budget full: {len(busy)} of {config.max_concurrent_seeds} "
                f"concurrent seeds active ({', '.join(busy)})",
            )
            return
        candidates = [
            view
            for view in observation.seeds
            if view.stage == lifecycle_pb2.SEED_STAGE_DORMANT
            and view.seed_id not in state.adaptations
            and view.seed_id not in out.finished_seeds
            and not state.is_embargoed(view.seed_id, epoch)
        ]
        if not candidates:
            embargoed = sorted(s for s in state.embargo_until if state.is_embargoed(s, epoch))
            out.wait(
                "",
                f"{plateau}; no dormant seed free" + (f" (embargoed: {', '.join(embargoed)})" if embargoed else ""),
            )
            return
        if kernels is None:
            out.wait("", f"{plateau}; no kernel directory attached, cannot choose a kernel")
            return
        self._germinate_best(state, observation, kernels, candidates, plateau, out, on_plateau=on_plateau)

    def _germinate_best(
        self,
        state: RunState,
        observation: Observation,
        kernels: KernelDirectory,
        candidates: list[SeedView],
        plateau: str,
        out: StepOutcome,
        *,
        on_plateau: bool = True,
    ) -> None:
        search = self._search(state, observation, kernels)
        if has_width_seeds(observation):
            options = growth_options(self._config, state, observation, candidates)
            if not on_plateau:
                # Before a plateau only a layer short of working units grows: the curve may still be
                # climbing, but those few units are the bottleneck whatever it does.
                options = [option for option in options if option.bound]
                if not options:
                    out.wait("", f"{plateau}; no layer is short of units")
                    return
            self._grow_best(state, observation, search, options, plateau, out)
            return
        budget = f"<= {search.max_parameter_count} params" if search.max_parameter_count else "any size"
        tried: set[str] = set()
        for ranked in bottleneck_ranking(candidates):
            view = ranked.view
            site = site_label(view.descriptor)
            if site in tried:
                continue
            tried.add(site)
            try:
                choice = choose_kernel(search, view.descriptor, state.blueprint_scores)
            except KernelQueryFailed as exc:
                logger.warning("run %s: kernel query failed: %s", observation.boundary.run_id, exc)
                out.wait(view.seed_id, f"{plateau}; waiting: kernel query for {site} failed: {exc}")
                return
            if choice is None:
                out.wait(
                    view.seed_id,
                    f"{plateau}; waiting: no validated kernel for {site} ({budget}), seed {ranked.describe()}",
                )
                continue
            self.germinate(state, observation, view, choice, f"{plateau}; seed {ranked.describe()}", out)
            return

    def _grow_best(
        self,
        state: RunState,
        observation: Observation,
        search: KernelSearch,
        options: list[GrowthOption],
        plateau: str,
        out: StepOutcome,
    ) -> None:
        """Germinate the first option a validated kernel fits (widening first, see esper.tamiyo.growth)."""
        if not options:
            out.wait("", f"{plateau}; every layer with a free seed has an adaptation under way")
            return
        model = observation.model_parameters
        paid = growth_paid(self._config, state)
        for option in options:
            view = option.view
            if option.held:
                out.wait(view.seed_id, f"{plateau}; {option.reason}; held: {option.held}")
                continue
            option_search = search
            if model > 0:
                step = max(1, int(self._config.growth_step_fraction * model))
                cap = min(search.max_parameter_count, step) if search.max_parameter_count else step
                option_search = dataclasses.replace(search, max_parameter_count=cap, by_size=True)
            budget = (
                f"<= {option_search.max_parameter_count} params" if option_search.max_parameter_count else "any size"
            )
            try:
                choice = choose_kernel(option_search, view.descriptor, state.blueprint_scores)
            except KernelQueryFailed as exc:
                logger.warning("run %s: kernel query failed: %s", observation.boundary.run_id, exc)
                out.wait(
                    view.seed_id, f"{plateau}; waiting: kernel query for {site_label(view.descriptor)} failed: {exc}"
                )
                return
            if choice is None:
                out.wait(
                    view.seed_id,
                    f"{plateau}; {option.reason}; but no validated kernel for {site_label(view.descriptor)} ({budget})",
                )
                continue
            size = f"model {model} -> {model + choice.kernel.parameter_count} params"
            if self._config.max_parameters:
                size += f" (budget {self._config.max_parameters})"
            why = f"{plateau}; {option.reason}; {size}" + (f"; {paid}" if paid else "")
            self.germinate(state, observation, view, choice, why, out)
            return

    def _search(self, state: RunState, observation: Observation, kernels: KernelDirectory) -> KernelSearch:
        config = self._config
        recent_failure = any(
            observation.epoch - failed < config.trouble_window_epochs
            for failed in state.failure_epochs(config.embargo_epochs).values()
        )
        preferred = config.preferred_tags
        ladder = (
            tag_ladder((*preferred, *config.conservative_tags), preferred) if recent_failure else tag_ladder(preferred)
        )
        return KernelSearch(
            directory=kernels,
            tag_ladder=ladder,
            max_parameter_count=self._parameter_budget(observation.model_parameters),
            page_size=config.kernel_page_size,
            max_candidates=config.max_kernel_candidates,
            device_kind=observation.device_kind,
        )

    def _parameter_budget(self, model_parameters: int) -> int:
        return kernel_parameter_budget(self._config, model_parameters)

    def _busy_seeds(self, state: RunState, observation: Observation, out: StepOutcome) -> list[str]:
        """Seeds holding a concurrency slot: tracked ones and any other the packet shows active."""
        busy = [
            view.seed_id
            for view in observation.seeds
            if view.seed_id in state.adaptations
            or (view.stage in ACTIVE_STAGES and view.seed_id not in out.finished_seeds)
        ]
        return busy

    def germinate(
        self,
        state: RunState,
        observation: Observation,
        view: SeedView,
        choice: KernelChoice,
        why: str,
        out: StepOutcome,
    ) -> None:
        """Germinate `view` with the chosen kernel: the germination, its promotion to LOADING, the adaptation."""
        kernel, boundary = choice.kernel, observation.boundary
        germinate = make_command(
            boundary,
            view.seed_id,
            lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION,
            f"germinate: {why}; {choice.reason}",
        )
        germinate.kernel_id = kernel.kernel_id
        germinate.blueprint_id = kernel.blueprint_id
        germinate.selected_for_tags.extend(choice.tags)
        germinate.grafting_strategy = self._config.grafting_strategy_value
        load = make_command(
            boundary,
            view.seed_id,
            lifecycle_pb2.COMMAND_TYPE_ADVANCE,
            f"promote from the queue: load kernel {kernel.kernel_id}",
            target_stage=lifecycle_pb2.SEED_STAGE_LOADING,
        )
        out.act(germinate)
        out.act(load)
        state.adaptations[view.seed_id] = Adaptation(
            seed_id=view.seed_id,
            germination_command_id=germinate.command_id,
            kernel_id=kernel.kernel_id,
            blueprint_id=kernel.blueprint_id,
            germination_epoch=observation.epoch,
            pre_metric=observation.score,
            selected_for_tags=choice.tags,
            kernel_report=_copy_report(kernel),
            last_stage=lifecycle_pb2.SEED_STAGE_GERMINATED,
            stage_entry_epoch=observation.epoch,
        )
        # Give the new seed `patience` epochs before the next plateau can germinate another.
        state.epochs_since_improvement = 0


def kernel_parameter_budget(config: TamiyoConfig, model_parameters: int) -> int:
    """Largest kernel allowed, 0 for no limit; never more than what `max_parameters` leaves."""
    limits = []
    if config.max_seed_parameters > 0:
        limits.append(config.max_seed_parameters)
    if config.max_seed_parameter_fraction > 0 and model_parameters > 0:
        limits.append(max(1, int(config.max_seed_parameter_fraction * model_parameters)))
    if config.max_parameters > 0:
        limits.append(max(1, config.max_parameters - model_parameters))
    return min(limits, default=0)


@dataclass(frozen=True)
class WantedBlueprint:
    """A blueprint submitted for a seed site: how it grows, its size, and the site's place in the layout."""

    blueprint_id: str
    growth_kind: int
    parameter_estimate: int
    site_index: int


def compile_priority(config: TamiyoConfig, blueprints: Sequence[WantedBlueprint], model_parameters: int) -> list[str]:
    """Blueprint ids in the order this policy would first take their kernels, so they compile in that order.

    What fits the budget at the model's starting size comes first, ranked as
    choose_kernel ranks it (a width kernel by size, the largest under the growth step
    first; a depth kernel by capacity), widening before depth when the layout has width
    sites (as in esper.tamiyo.growth); what only a larger model may take comes last,
    the nearest to fitting first. Sites take turns, so every site's first choice comes
    before any site's second.
    """
    budget = kernel_parameter_budget(config, model_parameters)
    step = max(1, int(config.growth_step_fraction * model_parameters)) if model_parameters > 0 else 0
    width_budget = min(budget, step) if budget and step else budget or step
    has_width = any(b.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH for b in blueprints)

    def fits(wanted: WantedBlueprint) -> bool:
        limit = width_budget if wanted.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH else budget
        return limit == 0 or wanted.parameter_estimate <= limit

    def within_site(wanted: WantedBlueprint) -> tuple[int, int, str]:
        width = wanted.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH
        size = wanted.parameter_estimate if width else int(math.log2(1 + wanted.parameter_estimate))
        # What fits now, best first; then what fits a larger model, the nearest first.
        return (0, -size, wanted.blueprint_id) if fits(wanted) else (1, size, wanted.blueprint_id)

    turn: dict[int, int] = {}
    by_site: dict[int, list[WantedBlueprint]] = {}
    for wanted in blueprints:
        by_site.setdefault(wanted.site_index, []).append(wanted)
    for index, wanted in ((i, w) for site in by_site.values() for i, w in enumerate(sorted(site, key=within_site))):
        turn[id(wanted)] = index

    def key(wanted: WantedBlueprint) -> tuple[int, int, int, int]:
        width_later = int(has_width and wanted.growth_kind != blueprint_pb2.GROWTH_KIND_WIDTH)
        return (int(not fits(wanted)), width_later, turn[id(wanted)], wanted.site_index)

    ordered = sorted(blueprints, key=key)
    return list(dict.fromkeys(wanted.blueprint_id for wanted in ordered))


def _copy_report(kernel: kernel_pb2.KernelArtifact) -> kernel_pb2.UrabraskValidationReport:
    report = kernel_pb2.UrabraskValidationReport()
    if kernel.HasField("validation_report"):
        report.CopyFrom(kernel.validation_report)
    return report
