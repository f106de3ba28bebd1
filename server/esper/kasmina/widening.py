"""Widening the host itself: a fossilized width seed becomes rows of its layer and columns of the next.

While a width seed adapts, its k new units live in its kernel: `V . act(W x + b)` added
to the next layer N's output. Once it fossilizes, Kasmina writes them into the host:
the layer L it widens gets k more output units (rows W, biases b) and N gets k more
input units (columns V, no bias). The model computes the same function (to float
rounding), but from then on the host trains them as its own weights, so the weights
between these units and every other unit of the neighbouring layers, which the
kernel could not hold, start at zero and learn: the layers become exactly as wide
as a static network of that width.

Flattening a [C + k, h, w] map puts the k new channels after the C old ones, so a
Linear N after Flatten gets its k*h*w new columns at the end.

Seeds placed before the host grew keep their shapes: a kernel that reads fewer
channels than its site now has reads the first ones (the units that existed when
it was placed), and one that writes fewer adds into the first ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from esper.ir import width_input_layer
from esper.leyline.v1 import blueprint_pb2


class WideningError(ValueError):
    """The kernel or the host layers are not what a merge needs."""


def merge_width(
    host: nn.Module, kernel: nn.Module, ir: blueprint_pb2.BlueprintIR, layer_path: str, next_path: str
) -> dict[Tensor, Tensor]:
    """Write the kernel's units into host layers `layer_path` and `next_path` (replaced by wider ones).

    Returns {new parameter: the parameter it grew from}, for optimizers that carry state over.
    """
    layer, after = host.get_submodule(layer_path), host.get_submodule(next_path)
    units_in, units_bias, units_out = _kernel_weights(kernel, ir)
    if not isinstance(layer, nn.Linear | nn.Conv2d) or not isinstance(after, nn.Linear | nn.Conv2d):
        raise WideningError(f"{layer_path} and {next_path} must be Linear or Conv2d layers")
    if layer.bias is None:
        raise WideningError(f"{layer_path} has no bias for the new units")
    k = units_in.shape[0]
    with torch.no_grad():
        rows = _fit(units_in, (k, *layer.weight.shape[1:]))  # a kernel placed before L's input grew reads its head
        wide = _like(layer, out_units=_units_out(layer) + k)
        wide.weight.copy_(torch.cat([layer.weight, rows.to(layer.weight)]))
        assert wide.bias is not None
        wide.bias.copy_(torch.cat([layer.bias, units_bias.to(layer.bias)]))
        columns = _fit(units_out, (after.weight.shape[0], units_out.shape[1], *after.weight.shape[2:]))
        # One column per new unit, or h*w of them when N is a Linear reading a flattened map.
        grown = _like(after, in_units=_units_in(after) + columns.shape[1])
        grown.weight.copy_(torch.cat([after.weight, columns.to(after.weight)], dim=1))
        if after.bias is not None:
            assert grown.bias is not None
            grown.bias.copy_(after.bias)
    set_submodule(host, layer_path, wide)
    set_submodule(host, next_path, grown)
    mapping: dict[Tensor, Tensor] = {wide.weight: layer.weight, grown.weight: after.weight}
    if wide.bias is not None and layer.bias is not None:
        mapping[wide.bias] = layer.bias
    if grown.bias is not None and after.bias is not None:
        mapping[grown.bias] = after.bias
    return mapping


def resize_to(host: nn.Module, state: Mapping[str, Tensor], prefix: str = "") -> list[str]:
    """Replace the host's Linear and Conv2d layers whose weights in `state` have another shape.

    For loading a checkpoint or a saved model whose host had grown (or not yet) as this
    one has; returns the paths replaced.
    """
    replaced = []
    for path, module in list(host.named_modules()):
        if not isinstance(module, nn.Linear | nn.Conv2d) or type(module) not in (nn.Linear, nn.Conv2d):
            continue
        weight = state.get(f"{prefix}{path}.weight")
        if weight is None or tuple(weight.shape) == tuple(module.weight.shape):
            continue
        fresh = _like(module, out_units=int(weight.shape[0]), in_units=int(weight.shape[1]) * _groups(module))
        set_submodule(host, path, fresh)
        replaced.append(path)
    return replaced


def set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, module)


def _kernel_weights(kernel: nn.Module, ir: blueprint_pb2.BlueprintIR) -> tuple[Tensor, Tensor, Tensor]:
    node = width_input_layer(ir)
    params = dict(kernel.named_parameters())
    names = (f"ops.n_{node.node_id}.weight", f"ops.n_{node.node_id}.bias") if node is not None else ("", "")
    out_name = f"ops.n_{ir.output_node_id}.weight"
    if node is None or any(name not in params for name in (*names, out_name)):
        raise WideningError("the kernel does not hold the parameters its IR names (a frozen or foreign kernel)")
    return params[names[0]].detach(), params[names[1]].detach(), params[out_name].detach()


def _fit(values: Tensor, shape: tuple[int, ...]) -> Tensor:
    """`values` zero-padded (or cut) to `shape`, leading slices kept."""
    out = values.new_zeros(shape)
    region = tuple(slice(0, min(a, b)) for a, b in zip(values.shape, shape, strict=True))
    out[region] = values[region]
    return out


def _units_out(module: nn.Linear | nn.Conv2d) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _units_in(module: nn.Linear | nn.Conv2d) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _groups(module: nn.Module) -> int:
    return module.groups if isinstance(module, nn.Conv2d) else 1


def _like(
    module: nn.Linear | nn.Conv2d, *, out_units: int | None = None, in_units: int | None = None
) -> nn.Linear | nn.Conv2d:
    """A layer like `module` with other unit counts, on its device and dtype (weights to be written)."""
    out_units = _units_out(module) if out_units is None else out_units
    in_units = _units_in(module) if in_units is None else in_units
    factory = {"device": module.weight.device, "dtype": module.weight.dtype}
    if isinstance(module, nn.Linear):
        return nn.Linear(in_units, out_units, bias=module.bias is not None, **factory)
    return nn.Conv2d(
        in_units,
        out_units,
        module.kernel_size,  # type: ignore[arg-type]
        stride=module.stride,  # type: ignore[arg-type]
        padding=module.padding,  # type: ignore[arg-type]
        dilation=module.dilation,  # type: ignore[arg-type]
        groups=module.groups,
        bias=module.bias is not None,
        padding_mode=module.padding_mode,
        **factory,
    )
