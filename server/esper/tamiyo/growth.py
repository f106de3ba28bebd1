"""Width or depth, and whether growth still pays: the heuristic's growth rules.

A layer of the host can grow two ways: a width seed adds units to it, a depth seed
adds a residual block after it. Seeds name their layer by `layer_index`, so the
seeds at one layer (a width seed, a depth seed, and the children regrowth gives
each) are considered together. For each layer with a free dormant seed:

  width  when the layer is narrow (fewer than `width_below_units` units, counting
         those its fossilized width seeds added), or its units are dead (at least
         `width_dead_ratio` never fire), or redundant (mean |correlation| at least
         `width_correlation`): the layer lacks working units, and a block after
         it would still see the same few.
  depth  when its units are healthy: they carry distinct, live features and the
         plateau asks for more computation on them.

Widening comes first; layers that get a depth seed follow. Within each, a layer
not yet grown that way comes first (narrowest first, then by bottleneck score for
depth; layout order breaks ties), then layers by what their last growth of that
kind bought per parameter, best first: once every layer has been tried, the run
keeps growing where growth pays most. When no validated kernel fits any of those,
each layer's other kind of growth is tried, in layout order. A layer with an adaptation
under way waits, so each measured gain belongs to one change. The layer's health
is read from a width seed's telemetry (it watches the layer's own output) or, at a
layer without one, from its depth seed's.

A layer is not widened while every unit of the layer before it is dead: its new
units would read nothing. Nor while every unit of the layer after it is dead: its
new units add to that layer's pre-activations, which pass no gradient back, so they
would train on nothing; the dead layer is widened first. A layer short of working
units is widened as soon as the warm-up is over, without waiting for a plateau
(`widen_without_plateau`); any other growth waits for one.

A layer whose last growth of a kind bought less than `growth_focus` times what
the best-paying one did is held back, so a free concurrency slot waits for the
layer where growth pays rather than going where it hardly does.

Growth pays while the last `gain_window` fossilized adaptations bought at least
`min_gain_per_kparam` of validation accuracy per 1,000 parameters they added
(accuracy at fossilization minus at germination); once they did not, the run
stops growing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from esper.leyline.v1 import blueprint_pb2, lifecycle_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.observation import ACTIVE_STAGES, Observation, SeedView
from esper.tamiyo.state import RunState

WIDTH = blueprint_pb2.GROWTH_KIND_WIDTH
# A layer whose units fire on no validation input at all.
ALL_DEAD = 0.999
DEPTH = blueprint_pb2.GROWTH_KIND_DEPTH


def is_width(view: SeedView) -> bool:
    return view.descriptor.growth_kind == WIDTH


@dataclass(frozen=True)
class LayerHealth:
    """What the seeds at one layer say about it."""

    layer_index: int
    units: int
    added_units: int
    dead: float
    correlation: float

    @property
    def width(self) -> int:
        """Units the layer computes now: its own and those fossilized width seeds added."""
        return self.units + self.added_units

    def describe(self) -> str:
        added = f" ({self.units} + {self.added_units} grown)" if self.added_units else ""
        return f"{self.width} units{added}, dead {self.dead:.2f}, correlation {self.correlation:.2f}"


@dataclass(frozen=True)
class GrowthOption:
    """A seed to germinate and why: widen or deepen its layer."""

    view: SeedView
    health: LayerHealth
    reason: str
    # Why the option waits for better-paying growth elsewhere; empty when it may grow.
    held: str = ""
    # The layer is short of working units (narrow, dead or redundant) and this widens it.
    bound: bool = False

    @property
    def widens(self) -> bool:
        return is_width(self.view)


def has_width_seeds(observation: Observation) -> bool:
    return any(is_width(view) for view in observation.seeds)


def growth_options(
    config: TamiyoConfig, state: RunState, observation: Observation, candidates: Sequence[SeedView]
) -> list[GrowthOption]:
    """One option per layer that can grow now, in the order to try them."""
    free = {view.seed_id for view in candidates}
    by_layer: dict[int, list[SeedView]] = {}
    for view in observation.seeds:
        by_layer.setdefault(view.descriptor.layer_index, []).append(view)
    widen: list[GrowthOption] = []
    deepen: list[GrowthOption] = []
    fallbacks: list[GrowthOption] = []
    healths = {layer: layer_health(layer, views) for layer, views in by_layer.items()}
    for layer, views in by_layer.items():
        if any(view.seed_id in state.adaptations or view.stage in ACTIVE_STAGES for view in views):
            continue
        width_seed = next((v for v in views if is_width(v) and v.seed_id in free), None)
        depth_seed = next((v for v in views if not is_width(v) and v.seed_id in free), None)
        health = healths[layer]
        why = width_reasons(config, health)
        widening = deepening = None
        if width_seed is not None:
            because = "; ".join(why) if why else "no depth seed free"
            # New units read what enters the layer: the previous layer's own units. All dead, they
            # would read nothing (measured: such width seeds culled with an eval gain of exactly 0).
            dead_input = _all_dead(healths.get(layer - 1))
            # New units add to the next layer's pre-activations. Its units all dead, those pass no
            # gradient: the seed trains on nothing (measured: seed loss exactly 0 through TRAINING,
            # culled with an eval gain of 0 on a dead 2 x 3 spirals host). That layer widens first.
            dead_output = _all_dead(healths.get(layer + 1))
            held = ""
            if dead_input:
                held = f"what enters it is dead: every unit of layer {layer - 1} never fires"
            elif dead_output:
                held = f"what it feeds is dead: every unit of layer {layer + 1} never fires, so no gradient reaches it"
            widening = GrowthOption(
                width_seed, health, f"widen layer {layer} ({health.describe()}): {because}", held=held, bound=bool(why)
            )
        if depth_seed is not None:
            because = "no width seed free" if why else f"healthy units, not narrow (>= {config.width_below_units})"
            deepening = GrowthOption(depth_seed, health, f"deepen layer {layer} ({health.describe()}): {because}")
        first, second = (widening, deepening) if why or deepening is None else (deepening, widening)
        if first is not None:
            (widen if first.widens else deepen).append(first)
        if second is not None:
            fallbacks.append(second)  # tried only when no kernel fits any layer's preferred growth
    order = {view.seed_id: index for index, view in enumerate(observation.seeds)}
    paid = _paid_per_kparam(state, observation)
    widen.sort(key=lambda o: (*_explored(paid, o), o.health.width, order[o.view.seed_id]))
    deepen.sort(key=lambda o: (*_explored(paid, o), -(o.health.dead + o.health.correlation), order[o.view.seed_id]))
    fallbacks.sort(key=lambda option: order[option.view.seed_id])
    return [_focused(config, paid, option) for option in (*widen, *deepen, *fallbacks)]


def _all_dead(health: LayerHealth | None) -> bool:
    """Every unit of the layer (if there is one) never fires."""
    return health is not None and health.dead >= ALL_DEAD


def _focused(config: TamiyoConfig, paid: dict[tuple[int, int], float], option: GrowthOption) -> GrowthOption:
    """The option, held back when its layer's last growth of that kind paid far less than the best."""
    if option.held:
        return option
    best = max(paid.values(), default=0.0)
    key = (option.view.descriptor.layer_index, WIDTH if option.widens else DEPTH)
    if best <= 0 or key not in paid or paid[key] >= config.growth_focus * best:
        return option
    held = (
        f"its last growth bought {100 * paid[key]:.2f} points per 1,000 parameters, under "
        f"{config.growth_focus} x the best layer's {100 * best:.2f}"
    )
    return dataclasses.replace(option, held=held)


def _paid_per_kparam(state: RunState, observation: Observation) -> dict[tuple[int, int], float]:
    """What the last fossilized growth of each (layer, kind) bought per 1,000 parameters."""
    layers = {view.seed_id: view.descriptor.layer_index for view in observation.seeds}
    paid: dict[tuple[int, int], float] = {}
    for step in state.growth_steps:
        if step.seed_id in layers:
            key = (layers[step.seed_id], step.growth_kind or DEPTH)
            paid[key] = step.score_gain * 1000.0 / max(step.parameter_count, 1)
    return paid


def _explored(paid: dict[tuple[int, int], float], option: GrowthOption) -> tuple[int, float]:
    """(0, 0) for a layer not yet grown this way; (1, -what it paid) for one that was."""
    kind = WIDTH if option.widens else DEPTH
    key = (option.view.descriptor.layer_index, kind)
    return (1, -paid[key]) if key in paid else (0, 0.0)


def layer_health(layer: int, views: Sequence[SeedView]) -> LayerHealth:
    widths = [view for view in views if is_width(view)]
    source = next((v for v in widths if v.telemetry is not None), None) or next(
        (v for v in views if v.telemetry is not None), None
    )
    features = (source or views[0]).features
    units = next((v.descriptor.layer_units for v in views if v.descriptor.layer_units), 0)
    added = sum(
        view.telemetry.added_units
        for view in widths
        if view.telemetry is not None and view.stage == lifecycle_pb2.SEED_STAGE_FOSSILIZED
    )
    return LayerHealth(layer, units, added, features.dead_node_ratio, features.avg_correlation)


def width_reasons(config: TamiyoConfig, health: LayerHealth) -> list[str]:
    """Why the layer should be widened; empty when its units are healthy and it is not narrow."""
    reasons = []
    if health.units and health.width < config.width_below_units:
        reasons.append(f"narrow: {health.width} units < {config.width_below_units}")
    if health.dead >= config.width_dead_ratio:
        reasons.append(f"dead units: {health.dead:.2f} >= {config.width_dead_ratio}")
    if health.correlation >= config.width_correlation:
        reasons.append(f"redundant units: correlation {health.correlation:.2f} >= {config.width_correlation}")
    return reasons


def growth_stopped(config: TamiyoConfig, state: RunState) -> str:
    """Why growth no longer pays, or "" while it does (or too little is known to tell)."""
    window = state.growth_steps[-config.gain_window :]
    if config.min_gain_per_kparam <= 0 or len(window) < config.gain_window:
        return ""
    added = sum(step.parameter_count for step in window)
    gained = sum(step.score_gain for step in window)
    per_kparam = gained * 1000.0 / max(added, 1)
    if per_kparam >= config.min_gain_per_kparam:
        return ""
    return (
        f"growth stopped paying: the last {len(window)} fossilized adaptations "
        f"({', '.join(step.seed_id for step in window)}) bought {100 * gained:+.2f} points of the metric for "
        f"{added} parameters, {100 * per_kparam:.2f} points per 1,000 < {100 * config.min_gain_per_kparam:.2f}"
    )


def growth_paid(config: TamiyoConfig, state: RunState) -> str:
    """The measured gain per parameter so far, for reasons; "" before any fossilization."""
    window = state.growth_steps[-config.gain_window :]
    if not window:
        return ""
    added = sum(step.parameter_count for step in window)
    gained = sum(step.score_gain for step in window)
    return f"growth pays {100 * gained * 1000.0 / max(added, 1):.2f} points per 1,000 parameters"
