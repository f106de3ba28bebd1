"""Configuration of a run's asset pipeline (torch-free: the run config imports it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from esper import checks
from esper.errors import InvalidArgument

PIPELINES = ("fast", "standard", "aggressive")
DEFAULT_ASSETS_DIR = "~/.cache/esper/assets"


@dataclass(frozen=True)
class AssetsConfig:
    """Where kernels come from in a run.

    `data_dir` holds the embedded Urza (database and artifacts), shared across runs:
    kernels are immutable and keyed by IR and toolchain hash, so one is compiled once.
    `template_ids` picks Karn templates to submit, each instantiated at every seed
    site's shape; empty means the SAFE tier. `pipelines` are the compilation pipelines
    to request; FAST kernels compile and validate first, and a blueprint's better
    kernel replaces its FAST one for later germinations once it is validated.

    By default a run never waits for a compiler: it trains from the first moment and
    Tamiyo germinates with whatever is validated when she decides, so which kernel a
    seed gets can depend on how fast this machine compiles. `wait_for_kernels` is the
    deterministic mode: the run waits, before its first epoch, until every submitted
    blueprint is characterized (at most `wait_timeout_seconds`), so the same seed gives
    the same run whatever the machine's load (a warm cache makes that wait short).
    `compile_workers` compiles and `validation_workers` characterizations run at once,
    each in a child process of its own.
    """

    data_dir: str = DEFAULT_ASSETS_DIR
    template_ids: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ("fast", "standard")
    wait_for_kernels: bool = False
    wait_timeout_seconds: float = 900.0
    compile_workers: int = 1
    validation_workers: int = 1

    def __post_init__(self) -> None:
        if not self.data_dir.strip():
            raise InvalidArgument.for_field("assets.data_dir", "must name a folder")
        unknown = [p for p in self.pipelines if p not in PIPELINES]
        if unknown or not self.pipelines:
            raise InvalidArgument.for_field(
                "assets.pipelines", f"must be a non-empty subset of {PIPELINES}, got {list(self.pipelines)}"
            )
        if any(not t.strip() for t in self.template_ids):
            raise InvalidArgument.for_field("assets.template_ids", "must not contain empty ids")
        checks.positive("assets.compile_workers", self.compile_workers)
        checks.positive("assets.validation_workers", self.validation_workers)
        checks.positive("assets.wait_timeout_seconds", self.wait_timeout_seconds)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()
