"""Tolaria's configuration: a run's `run` and `tolaria` sections, the whole `EsperConfig`, and
the Tolaria server's (`RunManagerConfig`, `MeshCollaboratorsConfig`).

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
MAX_HOST_DEPTH = 8
HOSTS = ("auto", "mlp", "cnn", "rescnn", "transformer")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunConfig:
    """One training run: data, length, seed and optimizer settings.

    `dataset` is "digits", "mnist5k", "spirals", "products6", "npz:PATH", or "text" /
    "text:PATH" (character-level language modelling, judged in bits per character).
    `host` is the host architecture: "auto" (an MLP for features, a CNN for images, a
    transformer for text), "mlp", "cnn", "rescnn" or "transformer"; `host_width` and
    `host_depth` None pick its small defaults. `device` is "auto" (CUDA when there is one),
    "cpu" or "cuda". `static` trains the host without seeds (the baseline). `out` is the
    run folder, required by `esper run` (see `require_out`). `validation_fraction` of the
    training rows is held out for validation.
    """

    dataset: str = "digits"
    epochs: int = 40
    seed: int = 0
    host: str = "auto"
    host_width: int | None = None
    host_depth: int | None = None
    device: str = "auto"
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
        if self.host_depth == 0:
            object.__setattr__(self, "host_depth", None)
        if self.host_depth is not None:
            checks.in_range("run.host_depth", self.host_depth, 1, MAX_HOST_DEPTH)
        checks.one_of("run.host", self.host, HOSTS)
        checks.one_of("run.device", self.device, DEVICES)
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
    diverged while a seed is blending in (with none, only a non-finite loss fails: a retry
    would replay the static twin's own epoch), unless only the validation loss jumped while the validation metric stayed
    within `graft_rollback_margin` of the run's best (overfitting, not a broken model):
    the run goes back to the checkpoint taken before the earliest graft still blending in
    (or the last good one) and retries the epoch, at most `max_rollbacks`
    times per run. With `graft_rollback`, a seed culled after its graft began takes the
    run back to the checkpoint taken just before that graft whenever that checkpoint
    validated more than `graft_rollback_margin` (a fraction of accuracy) better than the
    model without the seed; the culled seeds are locked ROLLED_BACK and every other seed
    goes on from its state in that checkpoint. After a divergence, the seeds blending
    into the model in the restored state are locked. With `retrain_discarded_epochs`,
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
    graft_rollback_margin: float = 0.01
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
        checks.in_range("tolaria.graft_rollback_margin", self.graft_rollback_margin, 0.0, 1.0)


@dataclass(frozen=True)
class RunManagerConfig:
    """The Tolaria server's runs: where they go and what the server lets callers ask for.

    `runs_dir` is the runs root: a run's folder (its `out_dir`, relative to the root or
    absolute) must resolve inside it; runs without one get `runs_dir/<run id>`.
    `data_root` is where `npz:` datasets may be read (None: `npz:` is refused), and
    `assets_root` where a run's embedded asset cache may live (None: not checked, for
    a server whose runs take kernels from a mesh's Urza). `max_concurrent_runs` train
    at once, at most `max_pending_runs` more wait; a finished run is kept
    `retention_seconds`, and at most `max_finished_runs` of them.
    """

    runs_dir: Path
    max_concurrent_runs: int = 1
    data_root: Path | None = None
    assets_root: Path | None = None
    max_pending_runs: int = 16
    max_finished_runs: int = 1000
    retention_seconds: float = 24 * 3600.0
    max_streams_per_run: int = 8
    max_streams: int = 48

    def __post_init__(self) -> None:
        for name in ("max_concurrent_runs", "max_pending_runs", "max_finished_runs", "max_streams_per_run"):
            checks.positive(name, getattr(self, name))
        checks.at_least("max_streams", self.max_streams, self.max_streams_per_run)
        checks.positive("retention_seconds", self.retention_seconds)


@dataclass(frozen=True)
class MeshCollaboratorsConfig:
    """Deadlines of a mesh run's calls.

    `tamiyo_step_deadline_seconds` bounds one epoch-end Step, tried once. The hook's
    budget is 18 ms and a Step on loopback takes a few; the deadline is there for a
    Tamiyo that hangs, not to enforce the budget (a run whose Step misses its
    deadline goes conservative for that epoch, and that must stay rare, or a mesh run
    would stop repeating its embedded twin). 0.25 s is far above a healthy Step and
    well below an epoch. It is not retried: UNAVAILABLE means Tamiyo is down or
    restarting, which a retry tens of milliseconds later would not change, and the
    next epoch asks again anyway. `tamiyo_deadline_seconds` bounds the checkpoint
    export and restore. Urza calls carry whole kernel artifacts and are retried.
    """

    tamiyo_step_deadline_seconds: float = 0.25
    tamiyo_deadline_seconds: float = 2.0
    urza_deadline_seconds: float = 30.0
    max_reconnect_backoff_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in (
            "tamiyo_step_deadline_seconds",
            "tamiyo_deadline_seconds",
            "urza_deadline_seconds",
            "max_reconnect_backoff_seconds",
        ):
            checks.positive(name, getattr(self, name))


def _default_kasmina() -> KasminaConfig:
    # No targets: esper.wrap's default sites, which on Esper's hosts are a depth seed after
    # every hidden ReLU (MLP, CNN) or after every block (transformer, residual CNN), and a
    # width seed on every hidden layer it can widen exactly. Lifecycle step counts suit
    # the bundled data sets (tens of steps per epoch at batch 64): a seed trains two
    # epochs or so, ramps in over about one and a half, and settles in one.
    return KasminaConfig(
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

    def __post_init__(self) -> None:
        # Kasmina refuses to germinate an embargoed slot; a shorter embargo in Tamiyo only
        # wastes boundaries on germinations that are refused.
        if self.tamiyo.embargo_epochs < self.kasmina.embargo_epochs:
            raise InvalidArgument.for_field(
                "tamiyo.embargo_epochs",
                f"must be at least kasmina.embargo_epochs ({self.kasmina.embargo_epochs}), "
                f"got {self.tamiyo.embargo_epochs}: Tamiyo would germinate slots Kasmina still embargoes",
            )


# A character-level language model judged in bits per character: Tamiyo's thresholds are
# in bits, and the run long enough for a layer or two to grow. The metric keeps improving
# slowly for long, so a plateau is an epoch that gains less than 0.03 bits; an adaptation
# then takes about six epochs from germination to fossilization.
LANGUAGE_MODEL_DEFAULTS: dict[str, Any] = {
    "run.epochs": 24,
    "tamiyo.warmup_epochs": 2,
    "tamiyo.patience": 1,
    "tamiyo.min_delta": 0.03,
    "tamiyo.min_training_epochs": 1,
    "tamiyo.fine_tune_epochs": 1,
    "tamiyo.min_epochs_to_finish": 6,
}
PROFILES: dict[str, Mapping[str, Any]] = {"classification": {}, "language_model": LANGUAGE_MODEL_DEFAULTS}


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *, profile: str | None = None
) -> EsperConfig:
    """Read the YAML config at `path` (None: defaults only), then apply `overrides`.

    `overrides` maps dotted keys (`{"run.epochs": 5}`) or nested sections
    (`{"run": {"epochs": 5}}`) to values; None values are skipped, so unset
    command-line flags can be passed through as they are. `profile` picks the defaults
    beneath the file: "classification" (EsperConfig's own) or "language_model"
    (`LANGUAGE_MODEL_DEFAULTS`); None picks by the data set the file and overrides name
    (text is a language model).
    """
    if profile is None:
        profile = profile_for(configfile.load(EsperConfig, path, overrides).run.dataset)
    return configfile.load(EsperConfig, path, overrides, defaults=_profile(profile))


def profile_for(dataset: str) -> str:
    """The defaults a data set's runs start from: text is a language model, anything else a classifier."""
    return "language_model" if dataset == "text" or dataset.startswith("text:") else "classification"


def _profile(name: str) -> Mapping[str, Any]:
    if name not in PROFILES:
        raise InvalidArgument.for_field("profile", f"must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


def parse_config(text: str, overrides: Mapping[str, Any] | None = None) -> EsperConfig:
    """Like `load_config`, from YAML text (e.g. RunConfig.config_yaml), its profile picked by its data set."""
    profile = profile_for(configfile.parse(EsperConfig, text, overrides).run.dataset)
    return configfile.parse(EsperConfig, text, overrides, defaults=_profile(profile))


def config_from_dict(data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> EsperConfig:
    """An `EsperConfig` from nested plain data over the defaults, checking every key."""
    return configfile.from_dict(EsperConfig, data, overrides)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested data (lists for tuples) for YAML or JSON; `load_config` reads it back."""
    return configfile.to_dict(config)
