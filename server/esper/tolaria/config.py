"""A run's configuration: Tolaria's `run` and `tolaria` sections, and the whole `EsperConfig`.

Every section is validated when it is built, so a trainer built from the SDK refuses
what `esper run --config` refuses, with the same dotted key (`tolaria.checkpoint_every`).
`load_config(path, overrides)` reads the YAML of `esper run --config` (see
esper.configfile). Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper import checks, configfile
from esper.assets.config import AssetsConfig
from esper.errors import InvalidArgument
from esper.kasmina.config import KasminaConfig
from esper.tamiyo.config import TamiyoConfig

MAX_EPOCHS = 10_000
MAX_HOST_WIDTH = 4096


@dataclass(frozen=True)
class RunConfig:
    """One training run: data, length, seed and optimizer settings.

    `dataset` is "digits", "mnist5k", "spirals", "products6" or "npz:PATH". `host_width` None picks
    the default host's small width. `static` trains the host without seeds (the
    baseline). `out` is the run folder, required by `esper run` (see `require_out`).
    `validation_fraction` of the training rows is held out for validation.
    """

    dataset: str = "digits"
    epochs: int = 40
    seed: int = 0
    host_width: int | None = None
    static: bool = False
    out: str | None = None
    batch_size: int = 64
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    validation_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.host_width == 0:  # the proto's "0 = default"
            object.__setattr__(self, "host_width", None)
        if not self.dataset.strip():
            raise InvalidArgument.for_field("run.dataset", "must name a dataset")
        checks.in_range("run.epochs", self.epochs, 1, MAX_EPOCHS)
        checks.non_negative("run.seed", self.seed)
        if self.host_width is not None:
            checks.in_range("run.host_width", self.host_width, 1, MAX_HOST_WIDTH)
        checks.positive("run.batch_size", self.batch_size)
        checks.positive("run.learning_rate", self.learning_rate)
        checks.non_negative("run.weight_decay", self.weight_decay)
        checks.in_range("run.validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True, high_open=True)
        if self.out is not None and not self.out.strip():
            object.__setattr__(self, "out", None)

    def require_out(self) -> Path:
        """The run folder; a run without one is refused."""
        if self.out is None:
            raise InvalidArgument.for_field("run.out", "required: the folder to write the run into (--out)")
        return Path(self.out).expanduser()


@dataclass(frozen=True)
class TolariaConfig:
    """The training academy: seed optimizer, checkpoints, rollback, hook budget.

    Seeds train with `seed_learning_rate`. A checkpoint is kept every
    `checkpoint_every` epochs. `hook_budget_ms` is the epoch-end hook's budget;
    exceeding it is reported.

    Never worse than static (esper.tolaria.never_worse): a non-finite loss, or a
    training or validation loss above `divergence_factor` times the median of the last
    `divergence_window` epochs' (and above `divergence_factor` x `divergence_min_loss`),
    diverged: the run goes back to the checkpoint taken before the earliest graft still
    blending in (or the last good one) and retries the epoch, at most `max_rollbacks`
    times per run. With `graft_rollback`, a seed culled after its graft began takes the
    run back to the checkpoint taken just before that graft whenever that checkpoint
    validated better than the model without the seed. With `retrain_discarded_epochs`,
    the epochs a rollback discards are trained again (the run grows by at most
    `run.epochs`), so the host trains as many kept epochs as its static twin. With
    `keep_best_state`, a run whose final state validates worse than its best epoch ends
    with (and saves) that best state.
    """

    seed_learning_rate: float = 1e-2
    checkpoint_every: int = 1
    divergence_factor: float = 3.0
    max_rollbacks: int = 3
    hook_budget_ms: float = 18.0
    divergence_window: int = 3
    divergence_min_loss: float = 0.1
    graft_rollback: bool = True
    keep_best_state: bool = True
    retrain_discarded_epochs: bool = True

    def __post_init__(self) -> None:
        checks.positive("tolaria.seed_learning_rate", self.seed_learning_rate)
        checks.positive("tolaria.checkpoint_every", self.checkpoint_every)
        checks.above("tolaria.divergence_factor", self.divergence_factor, 1.0)
        checks.non_negative("tolaria.max_rollbacks", self.max_rollbacks)
        checks.positive("tolaria.hook_budget_ms", self.hook_budget_ms)
        checks.positive("tolaria.divergence_window", self.divergence_window)
        checks.non_negative("tolaria.divergence_min_loss", self.divergence_min_loss)


def _default_kasmina() -> KasminaConfig:
    # Esper's default hosts put a depth seed after every hidden ReLU and a width seed on
    # every hidden layer. Lifecycle step counts suit the bundled data sets (tens of steps
    # per epoch at batch 64): a seed trains two epochs or so, ramps in over about one and
    # a half, and settles in one.
    return KasminaConfig(
        target_module_types=("ReLU",),
        width_seeds=True,
        ramp_steps=30,
        training_min_steps=40,
        stabilization_steps=18,
        fine_tuning_min_steps=20,
    )


def _default_tamiyo() -> TamiyoConfig:
    # Two adaptations at a time, each seed trained two epochs before it blends in; an
    # adaptation takes about eight epochs from germination to fossilization, and one
    # still in flight when the run ends is not part of the saved model.
    return TamiyoConfig(max_concurrent_seeds=2, min_training_epochs=2, min_epochs_to_finish=9)


@dataclass(frozen=True)
class EsperConfig:
    """Everything an embedded run needs, one section per component."""

    run: RunConfig = field(default_factory=RunConfig)
    tolaria: TolariaConfig = field(default_factory=TolariaConfig)
    kasmina: KasminaConfig = field(default_factory=_default_kasmina)
    tamiyo: TamiyoConfig = field(default_factory=_default_tamiyo)
    assets: AssetsConfig = field(default_factory=AssetsConfig)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> EsperConfig:
    """Read the YAML config at `path` (None: defaults only), then apply `overrides`.

    `overrides` maps dotted keys (`{"run.epochs": 5}`) or nested sections
    (`{"run": {"epochs": 5}}`) to values; None values are skipped, so unset
    command-line flags can be passed through as they are.
    """
    return configfile.load(EsperConfig, path, overrides)


def parse_config(text: str, overrides: Mapping[str, Any] | None = None) -> EsperConfig:
    """Like `load_config`, from YAML text (e.g. RunConfig.config_yaml)."""
    return configfile.parse(EsperConfig, text, overrides)


def config_from_dict(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> EsperConfig:
    """An `EsperConfig` from nested plain data over the defaults, checking every key."""
    return configfile.from_dict(EsperConfig, data, overrides)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested data (lists for tuples) for YAML or JSON; `load_config` reads it back."""
    return configfile.to_dict(config)
