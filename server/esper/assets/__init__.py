"""The asset pipeline wired in one process: Urza + Tezzeret + Urabrask for embedded runs."""

from esper.assets.config import AssetsConfig
from esper.assets.embedded import EmbeddedAssets, SeedSite

__all__ = ["AssetsConfig", "EmbeddedAssets", "SeedSite"]
