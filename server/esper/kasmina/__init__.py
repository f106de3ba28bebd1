"""Kasmina: the seed operator inside the host model (lifecycle, kernel cache, grafting).

The torch-backed names load on first use, so importing `esper.kasmina.config`
(as the run config does) never imports torch.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esper.kasmina.morphable import MorphableModel
    from esper.kasmina.operator import KasminaOperator
    from esper.kasmina.persistence import load_model, save_model
    from esper.kasmina.seed import KasminaSeed
    from esper.kasmina.wrapping import wrap

_LAZY = {
    "KasminaOperator": "esper.kasmina.operator",
    "KasminaSeed": "esper.kasmina.seed",
    "MorphableModel": "esper.kasmina.morphable",
    "load_model": "esper.kasmina.persistence",
    "save_model": "esper.kasmina.persistence",
    "wrap": "esper.kasmina.wrapping",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KasminaOperator", "KasminaSeed", "MorphableModel", "load_model", "save_model", "wrap"]
