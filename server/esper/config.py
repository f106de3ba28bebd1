"""Esper's run configuration, as the SDK names it: `esper.load_config("my.yaml")`.

The sections live with their components and `EsperConfig` with Tolaria, which runs
them all (esper.tolaria.config); this module gathers the names a researcher uses.
"""

from __future__ import annotations

from esper.assets.config import AssetsConfig
from esper.kasmina.config import KasminaConfig
from esper.tamiyo.config import TamiyoConfig
from esper.tolaria.config import (
    EsperConfig,
    RunConfig,
    TolariaConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_config,
)

__all__ = [
    "AssetsConfig",
    "EsperConfig",
    "KasminaConfig",
    "RunConfig",
    "TamiyoConfig",
    "TolariaConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_config",
]
