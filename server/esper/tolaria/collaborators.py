"""Where a morphogenetic run's collaborators live: in this process, or across the mesh.

The session builds a run against `RunCollaborators` only, so the embedded run and the
mesh run share one code path: the embedded factory wires Urza, Tezzeret and
Urabrask in-process and Tamiyo as a local object; a mesh factory hands in gRPC
clients and publishes to NATS JetStream instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esper.assets.pipeline import SeedSite
from esper.kasmina.kernel_cache import KernelCache
from esper.kasmina.source import KernelSource
from esper.leyline.v1 import control_pb2, run_pb2, telemetry_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.tolaria.config import EsperConfig
from esper.tolaria.devices import device_kind, resolve_device

if TYPE_CHECKING:
    from esper.tolaria.data_parallel import DataParallel

# (seed telemetry of the boundary, field reports Tamiyo produced) -> published where observers read them.
BoundaryPublisher = Callable[[Sequence[telemetry_pb2.SeedTelemetry], Sequence[control_pb2.FieldReport]], None]
# One run event -> published where observers (Nissa's mission control) follow the run live.
EventPublisher = Callable[[run_pb2.RunEvent], None]


@dataclass
class RunCollaborators:
    """A run's collaborators. `make_controller(model)` returns a Tamiyo API (local or remote).

    Kasmina loads kernels from `kernel_source` when given, else from `kernel_cache` with
    their IRs from `urza`.
    """

    urza: UrzaServiceApi
    kernel_cache: KernelCache
    make_controller: Callable[[Any], Any]
    publish: BoundaryPublisher
    prefetch: Callable[[Sequence[SeedSite]], object]
    close: Callable[[], None]
    description: str = "embedded"
    publish_event: EventPublisher | None = None
    # Names the run's blueprints, best first, so compile workers that serve this run take them first.
    prioritize: Callable[[Sequence[str]], None] | None = None
    kernel_source: KernelSource | None = None
    # Another rank of a data-parallel run: rank 0 submits the run's blueprints (and waits for
    # them); this one only loads the kernels rank 0's Tamiyo chooses.
    reads_only: bool = False


CollaboratorsFactory = Callable[[EsperConfig], RunCollaborators]


def _ignore(telemetry: Sequence[telemetry_pb2.SeedTelemetry], reports: Sequence[control_pb2.FieldReport]) -> None:
    """Embedded runs keep telemetry and field reports in their run folder only."""


def embedded_collaborators(config: EsperConfig) -> RunCollaborators:
    """Urza + Tezzeret + Urabrask in-process over SQLite and a folder; Tamiyo as a local object."""
    from esper.assets.embedded import EmbeddedAssets
    from esper.tamiyo import TamiyoController

    assets = EmbeddedAssets(config.assets, device_kind=device_kind(resolve_device(config.run.device, "run.device")))
    assets.start()
    return RunCollaborators(
        urza=assets.urza,
        kernel_cache=assets.kernel_cache,
        make_controller=lambda model: TamiyoController(model, config.tamiyo, kernels=assets.urza),
        publish=_ignore,
        prefetch=assets.prefetch,
        close=assets.stop,
        prioritize=assets.prioritize,
    )


def reader_collaborators(config: EsperConfig) -> RunCollaborators:
    """The embedded asset store as another rank of a data-parallel run reads it.

    No compile or validation worker (rank 0's pipeline fills the store), the same signed
    kernels; its Tamiyo is never asked (rank 0 decides for every rank).
    """
    from esper.assets.embedded import EmbeddedAssets

    assets = EmbeddedAssets(config.assets, device_kind=device_kind(resolve_device(config.run.device, "run.device")))
    return RunCollaborators(
        urza=assets.urza,
        kernel_cache=assets.kernel_cache,
        make_controller=lambda model: None,
        publish=_ignore,
        prefetch=assets.prefetch,
        close=assets.stop,
        description="embedded, read by a data-parallel rank",
        reads_only=True,
    )


def collaborators_for_rank(
    ranks: DataParallel, config: EsperConfig, collaborators: CollaboratorsFactory
) -> CollaboratorsFactory:
    """What this rank of a data-parallel run builds its run against.

    A data-parallel run is embedded: rank 0 creates the asset store (its database and
    signing key) before any other rank opens it, then runs it (through `collaborators`,
    which may wrap the embedded ones); the others read it. Every rank passes the same
    barrier here, whatever factory it was handed.
    """
    if ranks.is_main and not config.run.static:
        from esper.assets.embedded import EmbeddedAssets

        device = device_kind(resolve_device(config.run.device, "run.device"))
        EmbeddedAssets(config.assets, device_kind=device).stop()
    ranks.barrier()
    if ranks.is_main or collaborators is not embedded_collaborators:
        return collaborators
    return reader_collaborators
