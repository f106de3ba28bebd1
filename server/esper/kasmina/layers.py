"""The host's weight layers as Tamiyo's observation graph sees them, with the seeds that watch each."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from esper.leyline.v1 import telemetry_pb2

_WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)


def host_layers(host: nn.Module, layout: Sequence[telemetry_pb2.SeedDescriptor]) -> list[telemetry_pb2.HostLayer]:
    """Linear and Conv2d layers in registration order (the order of Esper's sequential hosts).

    A seed watches the layer at its site (a width seed's widened layer) or, for a depth
    seed, the last weight layer registered before the module it follows.
    """
    modules = list(host.named_modules())
    order = {path: index for index, (path, _) in enumerate(modules)}
    layers = [(order[path], path, module) for path, module in modules if isinstance(module, _WEIGHT_LAYERS)]
    found = [
        telemetry_pb2.HostLayer(
            module_path=path,
            layer_index=index,
            module_type=type(module).__name__,
            in_width=_width(module, True),
            out_width=_width(module, False),
            parameter_count=sum(p.numel() for p in module.parameters() if p.requires_grad),
        )
        for index, (_, path, module) in enumerate(layers)
    ]
    for descriptor in layout:
        site = descriptor.site or descriptor.seed_id.split("/", 1)[0]
        position = order.get(site)
        if position is None:
            continue
        watched = [i for i, (at, _, _) in enumerate(layers) if at <= position]
        if watched:
            found[watched[-1]].seed_ids.append(descriptor.seed_id)
    return found


def _width(module: nn.Module, inputs: bool) -> int:
    if isinstance(module, nn.Linear):
        return int(module.in_features if inputs else module.out_features)
    if isinstance(module, nn.Conv2d):
        return int(module.in_channels if inputs else module.out_channels)
    return 0
