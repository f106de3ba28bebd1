"""Configuration of Kasmina's components."""

from __future__ import annotations

from dataclasses import dataclass

from esper import checks

MIB = 1024 * 1024


@dataclass(frozen=True)
class KernelCacheConfig:
    """Bounds of the in-memory kernel cache.

    An entry's size is its artifact's byte size (weights plus the serialized graph),
    a stable proxy for what the loaded module holds. `require_validated` refuses
    kernels Urabrask has not passed: Kasmina grafts only VALIDATED kernels.
    `require_signature` refuses kernels without a signature by a trusted compile
    worker; turning it off is for tests of what happens after that check.
    """

    max_entries: int = 128
    max_bytes: int = 512 * MIB
    require_validated: bool = True
    require_signature: bool = True

    def __post_init__(self) -> None:
        checks.positive("max_entries", self.max_entries)
        checks.positive("max_bytes", self.max_bytes)


GRAFTING_STRATEGIES = ("LINEAR_RAMP", "COSINE_RAMP", "DRIFT_CONTROLLED")
WIDTH_INITS = ("ir", "live")


@dataclass(frozen=True)
class KasminaConfig:
    """Where seeds go in the host and how they move through their lifecycle.

    Targets are module type names (e.g. "ReLU") and/or module paths (e.g. "net.2");
    a seed follows each matching module. With neither, `esper.wrap` picks the model's
    block outputs or activations (esper.kasmina.wrapping.default_sites).
    `sequence_mixing` says whether [tokens, features] sites are "causal" (a token never
    reads a later one, so only causal blocks fit), "bidirectional", or "auto" (found by
    changing the example input's last token). Step counts are optimizer steps. While
    TRAINING, the seed learns from the task-loss gradient it would get if grafted at
    `training_blend_alpha` (its forward value stays exactly the host's); a depth
    seed's objective also has a proximal term that holds its output near
    `training_reach` times the host activation's norm, a width seed's near
    `width_training_reach` times the next layer's pre-activation (esper.kasmina.isolation;
    0 leaves the first-order objective unbounded).
    `isolation_check_every` and `gradient_sample_every` sample steps for the run-time
    isolation check and the seed's gradient statistics (the first step of each epoch
    is always checked). Correlation telemetry uses at most `correlation_max_units`
    units and `correlation_max_rows` rows per batch.
    `width_seeds` also places a width seed on every Linear or 3x3 conv layer whose
    pattern up to the next such layer a width template repeats exactly
    (esper.kasmina.wrapping). A fossilized seed's site gets a dormant child seed
    (so the site can grow again) while the model has fewer than `max_seeds` seeds.
    `width_init` is how a width seed's new units start: "live" (fresh weights of
    their own, biases centred on the first batch, esper.kasmina.units) or "ir" (the
    kernel's compiled initial weights). With `merge_width_fossils`, a fossilized width
    seed's units are written into the host's layers (esper.kasmina.widening), so from
    then on they connect to every unit around them.
    """

    target_module_types: tuple[str, ...] = ()
    target_module_paths: tuple[str, ...] = ()
    width_seeds: bool = False
    sequence_mixing: str = "auto"
    width_init: str = "live"
    merge_width_fossils: bool = True
    max_seeds: int = 32
    grafting_strategy: str = "LINEAR_RAMP"
    ramp_steps: int = 100
    drift_smoothing: float = 0.9
    training_blend_alpha: float = 1.0
    training_reach: float = 4.0
    width_training_reach: float = 0.0
    training_min_steps: int = 50
    stabilization_steps: int = 50
    fine_tuning_min_steps: int = 50
    embargo_epochs: int = 5
    isolation_check_every: int = 100
    gradient_sample_every: int = 50
    correlation_max_units: int = 32
    correlation_max_rows: int = 256
    max_remembered_commands: int = 10_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_module_types", tuple(self.target_module_types))
        object.__setattr__(self, "target_module_paths", tuple(self.target_module_paths))
        checks.one_of("kasmina.grafting_strategy", self.grafting_strategy, GRAFTING_STRATEGIES)
        checks.one_of("kasmina.width_init", self.width_init, WIDTH_INITS)
        checks.one_of("kasmina.sequence_mixing", self.sequence_mixing, ("auto", "causal", "bidirectional"))
        checks.in_range("kasmina.drift_smoothing", self.drift_smoothing, 0.0, 1.0, high_open=True)
        checks.in_range("kasmina.training_blend_alpha", self.training_blend_alpha, 0.0, 1.0, low_open=True)
        checks.in_range("kasmina.training_reach", self.training_reach, 0.0, 10.0)
        checks.in_range("kasmina.width_training_reach", self.width_training_reach, 0.0, 10.0)
        at_least_one = (
            "max_seeds",
            "ramp_steps",
            "embargo_epochs",
            "correlation_max_units",
            "correlation_max_rows",
            "max_remembered_commands",
        )
        for name in at_least_one:
            checks.positive(f"kasmina.{name}", getattr(self, name))
        # 0 disables periodic sampling (isolation is still checked on each epoch's first step).
        at_least_zero = (
            "training_min_steps",
            "stabilization_steps",
            "fine_tuning_min_steps",
            "isolation_check_every",
            "gradient_sample_every",
        )
        for name in at_least_zero:
            checks.non_negative(f"kasmina.{name}", getattr(self, name))
