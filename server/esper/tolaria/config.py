"""Tolaria's configuration: the `run` and `tolaria` sections of an Esper config.

Both are validated when they are built, so a trainer built from the SDK refuses
what `esper run --config` refuses, with the same dotted key (`tolaria.checkpoint_every`).
Torch-free: the config loader imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from esper import checks
from esper.errors import InvalidArgument

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
    `checkpoint_every` epochs. A non-finite loss, or a validation loss above
    `divergence_factor` times the larger of the best and the first epoch's, restores
    the last good checkpoint, at most `max_rollbacks` times per run.
    `hook_budget_ms` is the epoch-end hook's budget; exceeding it is reported.
    """

    seed_learning_rate: float = 1e-2
    checkpoint_every: int = 1
    divergence_factor: float = 4.0
    max_rollbacks: int = 3
    hook_budget_ms: float = 18.0

    def __post_init__(self) -> None:
        checks.positive("tolaria.seed_learning_rate", self.seed_learning_rate)
        checks.positive("tolaria.checkpoint_every", self.checkpoint_every)
        checks.above("tolaria.divergence_factor", self.divergence_factor, 1.0)
        checks.non_negative("tolaria.max_rollbacks", self.max_rollbacks)
        checks.positive("tolaria.hook_budget_ms", self.hook_budget_ms)
