"""Configuration of Kasmina's components."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class KernelCacheConfig:
    """Bounds of the in-memory kernel cache.

    An entry's size is its artifact's byte size (weights plus the serialized graph),
    a stable proxy for what the loaded module holds. `require_validated` refuses
    kernels Urabrask has not passed: Kasmina grafts only VALIDATED kernels.
    """

    max_entries: int = 128
    max_bytes: int = 512 * MIB
    require_validated: bool = True

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {self.max_entries}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {self.max_bytes}")
