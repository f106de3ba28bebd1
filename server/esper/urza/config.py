"""Configuration of one Urza hub: where metadata and artifact bytes live, and queue limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from esper import checks
from esper.leyline.v1 import kernel_pb2

MIB = 1024 * 1024
MIN_CHUNK_BYTES = 4096
MAX_CHUNK_BYTES = 4 * MIB
DEFAULT_DATA_DIR = ".esper/urza"
# A kernel download that takes longer is ended by the server, however slowly its client reads.
DOWNLOAD_DEADLINE_SECONDS = 300.0


@dataclass(frozen=True)
class UrzaConfig:
    """Urza's settings, validated at construction.

    `database_url` is a SQLAlchemy URL (`sqlite:///PATH` or `postgresql+psycopg://...`);
    empty means a SQLite file under `data_dir`. `store` is a folder path or
    `s3://bucket[/prefix]`; empty means a folder under `data_dir`. The S3 settings are
    used only by an `s3://` store; credentials left empty fall back to boto3's own chain.
    Each mesh identity may create `blueprint_quota` new blueprints per
    `blueprint_quota_window_seconds` (a token bucket; resubmissions are free).
    """

    data_dir: str = DEFAULT_DATA_DIR
    database_url: str = ""
    store: str = ""
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    compile_max_attempts: int = 3
    default_lease_seconds: int = 300
    default_pipelines: tuple[kernel_pb2.CompilationPipeline, ...] = (
        kernel_pb2.COMPILATION_PIPELINE_FAST,
        kernel_pb2.COMPILATION_PIPELINE_STANDARD,
    )
    chunk_size: int = MIB
    blueprint_quota: int = 1000
    blueprint_quota_window_seconds: float = 3600.0

    def __post_init__(self) -> None:
        data_dir = Path(self.data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'urza.db'}")
        if not self.store:
            object.__setattr__(self, "store", str(data_dir / "artifacts"))
        checks.positive("compile_max_attempts", self.compile_max_attempts)
        checks.in_range("default_lease_seconds", self.default_lease_seconds, 1, 3600)
        if not self.default_pipelines:
            raise ValueError("default_pipelines must name at least one pipeline")
        if kernel_pb2.COMPILATION_PIPELINE_UNSPECIFIED in self.default_pipelines:
            raise ValueError("default_pipelines must not contain COMPILATION_PIPELINE_UNSPECIFIED")
        checks.in_range("chunk_size", self.chunk_size, MIN_CHUNK_BYTES, MAX_CHUNK_BYTES)
        checks.positive("blueprint_quota", self.blueprint_quota)
        checks.positive("blueprint_quota_window_seconds", self.blueprint_quota_window_seconds)
        if self.store.startswith("s3://") and not self.store[len("s3://") :].split("/", 1)[0]:
            raise ValueError(f"store {self.store!r} names no bucket")

    @property
    def uses_s3(self) -> bool:
        return self.store.startswith("s3://")
