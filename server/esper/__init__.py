"""Esper: neural networks that grow their own architecture while they learn.

`import esper` is the researcher's SDK (README.md, "The SDK"). The `esper` namespace
is spread over three source folders: `generated/` (Leyline contracts),
`server/` (domain logic, serving) and `clients/` (typed clients); this
package extends its path so all three import as one.
"""

from __future__ import annotations

from pkgutil import extend_path
from typing import Any

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"

_SDK = {
    "wrap": "esper.kasmina",
    "Trainer": "esper.sdk.trainer",
    "Session": "esper.sdk.session",
    "FitResult": "esper.sdk.run",
    "Metric": "esper.tolaria.objective",
    "save_model": "esper.kasmina",
    "load_model": "esper.kasmina",
    "load_config": "esper.config",
    "TolariaTrainer": "esper.tolaria.trainer",
    "TamiyoController": "esper.tamiyo",
}

__all__ = list(_SDK)


def __getattr__(name: str) -> Any:
    """Resolve SDK names lazily, so `import esper` stays cheap (no torch import)."""
    module_name = _SDK.get(name)
    if module_name is None:
        raise AttributeError(f"module 'esper' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise NotImplementedError(f"esper.{name} is not built yet (module {module_name} is missing)") from exc
        raise
    return getattr(module, name)
