"""Esper's default host models, small on purpose so that growth has work to do."""

from esper.hosts.build import (
    DEFAULT_CNN_WIDTH,
    DEFAULT_MLP_WIDTH,
    DEFAULT_RESCNN_WIDTH,
    DEFAULT_TRANSFORMER_WIDTH,
    SEED_SITE_TYPE,
    Host,
    build_host,
    default_host_spec,
    default_seed_sites,
)
from esper.hosts.spec import HostSpec

__all__ = [
    "DEFAULT_CNN_WIDTH",
    "DEFAULT_MLP_WIDTH",
    "DEFAULT_RESCNN_WIDTH",
    "DEFAULT_TRANSFORMER_WIDTH",
    "SEED_SITE_TYPE",
    "Host",
    "HostSpec",
    "build_host",
    "default_host_spec",
    "default_seed_sites",
]
