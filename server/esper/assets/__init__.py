"""The asset pipeline as a run sees it: Urza + Tezzeret + Urabrask, in-process or remote.

Names load on first use, so `esper.assets.config` (read by the run config) never imports torch.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esper.assets.config import AssetsConfig
    from esper.assets.embedded import EmbeddedAssets
    from esper.assets.pipeline import SeedSite, prefetch_kernels, submit_templates, wait_until_settled

_LAZY = {
    "AssetsConfig": "esper.assets.config",
    "EmbeddedAssets": "esper.assets.embedded",
    "SeedSite": "esper.assets.pipeline",
    "prefetch_kernels": "esper.assets.pipeline",
    "submit_templates": "esper.assets.pipeline",
    "wait_until_settled": "esper.assets.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AssetsConfig", "EmbeddedAssets", "SeedSite", "prefetch_kernels", "submit_templates", "wait_until_settled"]
