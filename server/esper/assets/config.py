"""Configuration of the embedded asset pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PIPELINE_NAMES = ("fast", "standard", "aggressive")


def default_assets_dir() -> str:
    """Kernels are immutable and keyed by IR and toolchain hash, so runs share one cache."""
    return str(Path.home() / ".cache" / "esper" / "assets")


@dataclass(frozen=True)
class AssetsConfig:
    """Where embedded Urza keeps its database and artifacts, and what it compiles at start.

    `template_ids` empty means the Karn catalog's SAFE tier. Templates are instantiated
    at each seed site's activation shape. `wait_for_kernels` makes the first epoch
    boundary wait until the submitted blueprints are characterized, so a run with a
    given seed is repeatable whatever the machine's load (the wait is reported apart
    from the hook time).
    """

    data_dir: str = ""
    template_ids: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ("standard",)
    wait_for_kernels: bool = True
    wait_timeout_seconds: float = 900.0
    compile_workers: int = 1
    validation_workers: int = 1

    def __post_init__(self) -> None:
        if not self.data_dir:
            object.__setattr__(self, "data_dir", default_assets_dir())
        unknown = [name for name in self.pipelines if name not in PIPELINE_NAMES]
        if unknown or not self.pipelines:
            raise ValueError(
                f"pipelines must be a non-empty subset of {PIPELINE_NAMES}, got {self.pipelines}"
            )
        if self.compile_workers < 1 or self.validation_workers < 1:
            raise ValueError("compile_workers and validation_workers must be >= 1")
        if self.wait_timeout_seconds <= 0:
            raise ValueError("wait_timeout_seconds must be > 0")
