"""Where seeds get their kernels: a small protocol, and its implementation over the kernel cache and Urza."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from torch import nn

from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2

if TYPE_CHECKING:
    from esper.kasmina.kernel_cache import KernelCache
    from esper.urza.api import UrzaApi


@dataclass(frozen=True)
class KernelDescription:
    """A kernel's artifact metadata and, when known, the blueprint IR it was compiled from."""

    artifact: kernel_pb2.KernelArtifact
    ir: blueprint_pb2.BlueprintIR | None = None
    template_id: str = ""


class KernelSource(Protocol):
    """What Kasmina needs to load a kernel into a seed. Any error means the load failed."""

    def describe(self, kernel_id: str) -> KernelDescription:
        """The kernel's metadata (and IR, for lineage)."""
        ...

    def instantiate(self, kernel_id: str) -> nn.Module:
        """A private trainable module for one seed: [batch, *shape] -> [batch, *shape]."""
        ...


class CachedKernelSource:
    """Kernels from Kasmina's kernel cache; their blueprint IRs from Urza (for lineage.json)."""

    def __init__(self, cache: KernelCache, urza: UrzaApi) -> None:
        self._cache = cache
        self._urza = urza

    def describe(self, kernel_id: str) -> KernelDescription:
        artifact = self._cache.load(kernel_id).artifact
        blueprint = self._urza.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=artifact.blueprint_id)).blueprint
        return KernelDescription(
            artifact=artifact,
            ir=blueprint.ir if blueprint.HasField("ir") else None,
            template_id=artifact.template_id or blueprint.template_id,
        )

    def instantiate(self, kernel_id: str) -> nn.Module:
        # The operator checks the kernel's shape against the seed's once, at load: the
        # exported program's per-call input check would cost as much as a small block.
        return self._cache.instantiate(kernel_id, check_inputs=False)
