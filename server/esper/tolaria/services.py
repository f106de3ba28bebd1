"""Where a morphogenetic run's collaborators live: in this process, or across the mesh.

The session builds a run against `RunServices` only, so the embedded run and the
mesh run share one code path: the embedded factory wires Urza, Tezzeret and
Urabrask in-process and Tamiyo as a local object; a mesh factory hands in gRPC
clients and publishes to NATS JetStream instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from esper.assets.pipeline import SeedSite
from esper.kasmina.kernel_cache import KernelCache
from esper.leyline.v1 import control_pb2, run_pb2, telemetry_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.tolaria.config import EsperConfig

# (seed telemetry of the boundary, field reports Tamiyo produced) -> published where observers read them.
BoundaryPublisher = Callable[[Sequence[telemetry_pb2.SeedTelemetry], Sequence[control_pb2.FieldReport]], None]
# One run event -> published where observers (Nissa's mission control) follow the run live.
EventPublisher = Callable[[run_pb2.RunEvent], None]


@dataclass
class RunServices:
    """A run's collaborators. `make_controller(model)` returns a Tamiyo API (local or remote)."""

    urza: UrzaServiceApi
    kernel_cache: KernelCache
    make_controller: Callable[[Any], Any]
    publish: BoundaryPublisher
    prefetch: Callable[[Sequence[SeedSite]], object]
    close: Callable[[], None]
    description: str = "embedded"
    publish_event: EventPublisher | None = None


ServicesFactory = Callable[[EsperConfig], RunServices]


def _ignore(telemetry: Sequence[telemetry_pb2.SeedTelemetry], reports: Sequence[control_pb2.FieldReport]) -> None:
    """Embedded runs keep telemetry and field reports in their run folder only."""


def embedded_services(config: EsperConfig) -> RunServices:
    """Urza + Tezzeret + Urabrask in-process over SQLite and a folder; Tamiyo as a local object."""
    from esper.assets.embedded import EmbeddedAssets
    from esper.tamiyo import TamiyoController

    assets = EmbeddedAssets(config.assets)
    assets.start()
    return RunServices(
        urza=assets.urza,
        kernel_cache=assets.kernel_cache,
        make_controller=lambda model: TamiyoController(model, config.tamiyo, kernels=assets.urza),
        publish=_ignore,
        prefetch=assets.prefetch,
        close=assets.stop,
    )
