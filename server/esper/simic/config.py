"""Simic's configuration: where it keeps its records and objects, and how it trains policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from esper import checks
from esper.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

DEFAULT_DATA_DIR = ".esper/simic"
DATABASE_FILE = "simic.db"
OBJECTS_DIR = "objects"


@dataclass(frozen=True)
class TrainingConfig:
    """How Simic trains and gates a policy.

    Behaviour cloning: `bc_steps` Adam steps of `batch_size` transitions at
    `learning_rate`, on at most `max_transitions` of heuristic-v1's newest
    transitions; `min_transitions` below which there is nothing to learn from.
    The validation gate plays `gate_seeds` episodes of each task of the named
    `gate_suite` (simic.curriculum) with the candidate and with the current policy;
    the candidate is published only if its mean score is not below the current
    one's by more than `gate_tolerance` (score points). `workers` episodes run at
    once, each in a child process, under `episode_timeout_seconds`. Kernels come
    from the embedded asset cache in `assets_dir` (empty: Esper's shared cache).
    """

    bc_steps: int = 300
    batch_size: int = 64
    learning_rate: float = 3e-3
    max_transitions: int = 20_000
    min_transitions: int = 8
    hidden: int = 32
    layers: int = 2
    gate_suite: str = "validation"
    gate_seeds: int = 2
    gate_tolerance: float = 0.0
    workers: int = 1
    episode_timeout_seconds: float = 900.0
    assets_dir: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("bc_steps", "batch_size", "max_transitions", "min_transitions", "gate_seeds", "workers"):
            checks.positive(f"training.{name}", getattr(self, name))
        checks.positive("training.learning_rate", self.learning_rate)
        checks.non_negative("training.gate_tolerance", self.gate_tolerance)
        checks.positive("training.episode_timeout_seconds", self.episode_timeout_seconds)


@dataclass(frozen=True)
class SimicConfig:
    """Where Simic keeps field reports, transitions and policies, and how it pages them.

    `database_url` is a SQLAlchemy URL (`sqlite:///PATH` or `postgresql+psycopg://...`);
    empty means the SQLite file `simic.db` under `data_dir`. `store` holds tensors
    and weights: a folder, or `s3://bucket[/prefix]` (with the `s3_*` settings; empty
    credentials use boto3's own chain); empty means `objects/` under `data_dir`.
    """

    data_dir: str = DEFAULT_DATA_DIR
    database_url: str = ""
    store: str = ""
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE
    max_reports_per_request: int = 1000
    max_transitions_per_request: int = 1000
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if not self.data_dir and not (self.database_url and self.store):
            raise ValueError("data_dir must be set unless database_url and store both are")
        checks.in_range("default_page_size", self.default_page_size, 1, self.max_page_size)
        checks.positive("max_reports_per_request", self.max_reports_per_request)
        checks.positive("max_transitions_per_request", self.max_transitions_per_request)
        if self.store.startswith("s3://") and not self.store[len("s3://") :].split("/", 1)[0]:
            raise ValueError(f"store {self.store!r} names no bucket")

    @property
    def resolved_database_url(self) -> str:
        """The database to open: `database_url`, or the SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / DATABASE_FILE).resolve()}"

    @property
    def resolved_store(self) -> str:
        """The object store: `store`, or the `objects` folder under `data_dir`."""
        return self.store or str(Path(self.data_dir) / OBJECTS_DIR)
