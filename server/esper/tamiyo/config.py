"""Tamiyo's configuration: the heuristic policy's thresholds and budgets."""

from __future__ import annotations

from dataclasses import dataclass

from esper import checks
from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2

HEURISTIC_POLICY_ID = "heuristic-v1"

_STRATEGY_PREFIX = "GRAFTING_STRATEGY_"
_STRATEGIES: dict[str, lifecycle_pb2.GraftingStrategy] = {
    "LINEAR_RAMP": lifecycle_pb2.GRAFTING_STRATEGY_LINEAR_RAMP,
    "COSINE_RAMP": lifecycle_pb2.GRAFTING_STRATEGY_COSINE_RAMP,
    "DRIFT_CONTROLLED": lifecycle_pb2.GRAFTING_STRATEGY_DRIFT_CONTROLLED,
}


@dataclass(frozen=True)
class TamiyoConfig:
    """How the strategic controller decides. Accuracies and gains are fractions in [0, 1].

    Plateau: `patience` epochs in a row without validation accuracy beating the best
    by more than `min_delta`; nothing germinates before epoch `warmup_epochs`.
    Lifecycle gates: `min_training_epochs` in TRAINING before grafting; an evaluation
    gain above `min_eval_gain` to keep a seed after EVALUATING; `fine_tune_epochs` in
    FINE_TUNING, then fossilize only if accuracy reached the germination accuracy plus
    `fossilize_min_improvement` and the last gain (seed on vs off) still beats `min_eval_gain`.
    A seed stuck `stage_timeout_epochs` in TRAINING is cancelled, in EVALUATING culled.
    No germination when fewer than `min_epochs_to_finish` epochs remain (the request's
    `final_epoch` tells how many): an adaptation that cannot finish never joins the model.
    Harm: accuracy more than `harm_threshold` below the germination accuracy culls.
    A failed slot is embargoed for `embargo_epochs`.
    Kernel budget: parameters at most `max_seed_parameter_fraction` x the model's
    trainable parameters and at most `max_seed_parameters` (0 disables either).
    Conservative mode (no germination) is on while `conservative_after_failures`
    distinct slots failed within the last `trouble_window_epochs`, while losses are
    not finite, or always when `conservative_mode` is set; once none of that holds it
    turns off when the last failure is `calm_epochs` old (one slot failing again and
    again is the embargo's business, not the run's). `preferred_tags` filter kernel queries; after a recent
    failure the `conservative_tags` are asked for first.
    `grafting_strategy` is a GraftingStrategy name ("LINEAR_RAMP", "COSINE_RAMP",
    "DRIFT_CONTROLLED"). `step_budget_ms` only makes a slow step log a warning.
    `policy_id` names the policy that decides: "heuristic-v1", a shipped learned policy
    ("gnn-v1"), a Simic policy id, or the path of a policy file (`<id>.safetensors` with its card
    `<id>.json` beside it). A learned policy slower than `policy_timeout_ms` at a
    boundary is overruled by heuristic-v1 for that boundary. Urza's answers to kernel
    queries are reused for `kernel_cache_seconds` (0: ask every time).

    Growth (width or depth, esper.tamiyo.growth): the model never grows past
    `max_parameters` (0: no budget): a germination whose kernel would take it there is
    never issued. Growth goes on while it pays: once the last `gain_window`
    fossilized adaptations together bought less than `min_gain_per_kparam` of
    validation accuracy (a fraction) per 1,000 parameters they added, no more seeds
    germinate (0 disables the check). Where a layer has a width seed, it is widened
    rather than deepened when it is narrow (fewer than `width_below_units` units,
    its own and those width seeds added), when at least `width_dead_ratio` of its
    units never fire, or when they are redundant (mean |correlation| at least
    `width_correlation`); healthy units get a depth seed. There, a kernel adds at most
    `growth_step_fraction` x the model's parameters (the largest that fits is taken),
    so the model grows in steps of at most that fraction, and once every layer has
    been grown, a layer whose last growth bought less than `growth_focus` x what the
    best-paying layer's did waits for better ones (a second concurrent slot does not
    go to a layer where growth hardly pays). With `widen_without_plateau`, a layer
    short of working units is widened without waiting for a plateau (after the warm-up).
    Bounds on what callers make Tamiyo remember: a run presents at most
    `max_seeds_per_run` seeds (in one step, and embargoed over its life), and Tamiyo
    keeps the state of the `max_tracked_runs` most recently stepped runs.
    """

    policy_id: str = HEURISTIC_POLICY_ID
    patience: int = 2
    min_delta: float = 0.002
    warmup_epochs: int = 2
    max_concurrent_seeds: int = 1
    min_training_epochs: int = 1
    fine_tune_epochs: int = 2
    stage_timeout_epochs: int = 8
    min_epochs_to_finish: int = 6
    min_eval_gain: float = 0.0
    fossilize_min_improvement: float = 0.002
    harm_threshold: float = 0.02
    embargo_epochs: int = 5  # Kasmina embargoes a culled slot as long (kasmina.embargo_epochs)
    max_seed_parameter_fraction: float = 4.0
    max_seed_parameters: int = 0
    preferred_tags: tuple[str, ...] = ("numerically_stable",)
    conservative_tags: tuple[str, ...] = ("numerically_stable", "low_memory")
    conservative_mode: bool = False
    conservative_after_failures: int = 2
    trouble_window_epochs: int = 6
    calm_epochs: int = 3
    grafting_strategy: str = "LINEAR_RAMP"
    step_budget_ms: float = 12.0
    kernel_page_size: int = 100
    max_kernel_candidates: int = 500
    max_parameters: int = 0
    min_gain_per_kparam: float = 0.01
    gain_window: int = 2
    width_below_units: int = 16
    width_dead_ratio: float = 0.25
    width_correlation: float = 0.6
    growth_step_fraction: float = 3.0
    growth_focus: float = 0.25
    widen_without_plateau: bool = True
    policy_timeout_ms: float = 250.0
    kernel_cache_seconds: float = 10.0
    max_seeds_per_run: int = 16_384
    max_tracked_runs: int = 1024

    def __post_init__(self) -> None:
        if not self.policy_id.strip() or len(self.policy_id) > 1024:
            raise InvalidArgument.for_field("tamiyo.policy_id", "must name a policy (at most 1024 characters)")
        checks.positive("tamiyo.policy_timeout_ms", self.policy_timeout_ms)
        checks.non_negative("tamiyo.kernel_cache_seconds", self.kernel_cache_seconds)
        for name in (
            "patience",
            "max_concurrent_seeds",
            "min_training_epochs",
            "fine_tune_epochs",
            "stage_timeout_epochs",
            "conservative_after_failures",
            "trouble_window_epochs",
            "kernel_page_size",
            "max_kernel_candidates",
            "gain_window",
            "max_seeds_per_run",
            "max_tracked_runs",
        ):
            checks.positive(f"tamiyo.{name}", getattr(self, name))
        for name in (
            "warmup_epochs",
            "embargo_epochs",
            "calm_epochs",
            "max_seed_parameters",
            "min_epochs_to_finish",
            "max_parameters",
            "width_below_units",
        ):
            checks.non_negative(f"tamiyo.{name}", getattr(self, name))
        for name in (
            "min_delta",
            "fossilize_min_improvement",
            "harm_threshold",
            "width_dead_ratio",
            "width_correlation",
            "min_gain_per_kparam",
            "growth_focus",
        ):
            checks.in_range(f"tamiyo.{name}", getattr(self, name), 0.0, 1.0)
        checks.in_range("tamiyo.min_eval_gain", self.min_eval_gain, -1.0, 1.0)
        checks.positive("tamiyo.growth_step_fraction", self.growth_step_fraction)
        checks.non_negative("tamiyo.max_seed_parameter_fraction", self.max_seed_parameter_fraction)
        checks.positive("tamiyo.step_budget_ms", self.step_budget_ms)
        checks.at_least(
            "tamiyo.stage_timeout_epochs",
            self.stage_timeout_epochs,
            max(self.min_training_epochs, self.fine_tune_epochs),
        )
        # Urza's page limit.
        checks.at_most("tamiyo.kernel_page_size", self.kernel_page_size, 1000)
        for name in ("preferred_tags", "conservative_tags"):
            tags = getattr(self, name)
            if not isinstance(tags, tuple) or any(not isinstance(tag, str) or not tag for tag in tags):
                raise InvalidArgument.for_field(f"tamiyo.{name}", "must be a list of non-empty strings")
        grafting_strategy_from_name(self.grafting_strategy)

    @property
    def grafting_strategy_value(self) -> lifecycle_pb2.GraftingStrategy:
        """The GraftingStrategy enum value `grafting_strategy` names."""
        return grafting_strategy_from_name(self.grafting_strategy)


def grafting_strategy_from_name(name: str) -> lifecycle_pb2.GraftingStrategy:
    """GraftingStrategy value for "LINEAR_RAMP" or "GRAFTING_STRATEGY_LINEAR_RAMP" (any case)."""
    strategy = _STRATEGIES.get(name.upper().removeprefix(_STRATEGY_PREFIX))
    if strategy is None:
        raise InvalidArgument.for_field("tamiyo.grafting_strategy", f"{name!r} is not one of {sorted(_STRATEGIES)}")
    return strategy
