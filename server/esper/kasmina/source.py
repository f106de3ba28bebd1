"""Where seeds get their kernels: a small protocol, its implementation over the kernel cache and Urza,
and the checks a kernel passes before a seed holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from esper.kasmina.isolation import shared_parameters
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, telemetry_pb2, urza_pb2

if TYPE_CHECKING:
    from esper.kasmina.kernel_cache import KernelCache
    from esper.leyline.v1.services import UrzaServiceApi


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
        """A private trainable module for one seed: [batch, *input shape] -> [batch, *output shape]."""
        ...


class CachedKernelSource:
    """Kernels from Kasmina's kernel cache; their blueprint IRs from Urza (for lineage.json)."""

    def __init__(self, cache: KernelCache, urza: UrzaServiceApi) -> None:
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


def load_checked_kernel(
    source: KernelSource, kernel_id: str, host: nn.Module, descriptor: telemetry_pb2.SeedDescriptor
) -> tuple[nn.Module, KernelDescription]:
    """A kernel fit for the seed at `descriptor`, on the host's device, with its description.

    Raises (anything) when the source fails, or the kernel's shape is not the seed's,
    or it shares parameters with the host; the caller culls the seed.
    """
    description = source.describe(kernel_id)
    shape = list(descriptor.input_shape.dims)
    width = descriptor.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH
    out_shape = list(descriptor.output_shape.dims) if width else shape
    artifact = description.artifact
    declared = list(artifact.input_shape.dims)
    if declared and declared != shape:
        raise ValueError(f"kernel takes [batch, {declared}], the seed sees [batch, {shape}]")
    kernel_kind = artifact.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH
    if artifact.growth_kind and kernel_kind != (descriptor.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH):
        kind = blueprint_pb2.GrowthKind.Name(kernel_kind).removeprefix("GROWTH_KIND_").lower()
        raise ValueError(f"kernel {kernel_id} is a {kind} kernel; the seed {descriptor.seed_id} is not")
    kernel = source.instantiate(kernel_id)
    if not isinstance(kernel, nn.Module):
        raise TypeError(f"the kernel source returned {type(kernel).__name__}, not a module")
    kernel = on_device_of(kernel, host)
    shared = shared_parameters(kernel, frozenset(id(p) for p in host.parameters()))
    if shared:
        raise ValueError(f"kernel shares parameters with the host: {', '.join(shared)}")
    probe = torch.zeros([2, *shape], device=_device_of(host))
    with torch.no_grad():
        out = kernel(probe)
    if not isinstance(out, torch.Tensor) or list(out.shape) != [2, *out_shape]:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        wanted = f"[batch, {out_shape}]" if width else "the same shape"
        raise ValueError(f"kernel maps [batch, {shape}] to {got}, not to {wanted}")
    return kernel, description


def on_device_of(kernel: nn.Module, host: nn.Module) -> nn.Module:
    """Kernels load on the CPU; a host trained elsewhere gets its kernels moved to it."""
    device = _device_of(host)
    return kernel if device.type == "cpu" else kernel.to(device)


def _device_of(host: nn.Module) -> torch.device:
    param = next(iter(host.parameters()), None)
    return param.device if param is not None else torch.device("cpu")
