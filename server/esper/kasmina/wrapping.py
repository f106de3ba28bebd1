"""`wrap`: place Kasmina seeds after chosen modules of any PyTorch model, and width seeds on its layers.

A width seed widens a layer L by adding new units that read what enters L and feed
the next layer N. Its kernel (esper.karn.templates.width) repeats the host's own
pattern between L and N, so one is placed only where that pattern is one the width
templates build, checked by module type and numerically on the example input:

  Linear -> ReLU -> Linear
  Conv2d 3x3 -> ReLU [-> MaxPool2d(2)] -> Conv2d 3x3        (stride 1, padding 1, one group)
  Conv2d 3x3 -> ReLU -> MaxPool2d(2) -> Flatten -> Linear

"Numerically": applying the modules seen between L and N to L's output must give
exactly what N received, so an operation done in `forward` without a module (an
F.relu, a torch.flatten) cannot hide between them and make the widening inexact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from esper.errors import InvalidArgument
from esper.kasmina.config import KasminaConfig
from esper.kasmina.morphable import MorphableModel
from esper.leyline.v1 import blueprint_pb2, telemetry_pb2

logger = logging.getLogger(__name__)

_KIND_BY_RANK = {
    1: blueprint_pb2.INPUT_KIND_FEATURES,  # [features]
    2: blueprint_pb2.INPUT_KIND_SEQUENCE,  # [tokens, features]
    3: blueprint_pb2.INPUT_KIND_IMAGE,  # [channels, h, w]
}


def wrap(
    model: nn.Module,
    config: KasminaConfig | None = None,
    *,
    example_input: Any,
    targets: Sequence[str] | None = None,
) -> MorphableModel:
    """A MorphableModel with a dormant seed after every target module of `model`.

    `targets` lists module type names ("ReLU") and/or dotted module paths
    ("blocks.2"); it replaces the config's `target_module_types`/`target_module_paths`.
    With neither, the default sites (`default_sites`) are the outputs of the model's
    repeated blocks (transformer or residual blocks: composite members of a
    ModuleList or Sequential that keep their input's shape), else its activation
    modules (ReLU, GELU, SiLU, ...). `config` None is `KasminaConfig()` with width
    seeds on.

    One forward of `example_input` (a batch, run without gradients in eval mode, the
    model's modes restored after) records each target's output shape, which fixes the
    seed's input kind and shape, and the order activations flow through them, which is
    the seed layout. A [tokens, features] site is causal (CAUSAL_SEQUENCE: its blocks
    never let a token read a later one) unless `config.sequence_mixing` says
    "bidirectional", or says "auto" and changing the example's last token changes the
    site's earlier tokens. With `config.width_seeds`, a second forward finds the
    layers a width seed can widen; each joins the layout just before the first seed
    after its layer.
    """
    config = config if config is not None else KasminaConfig(width_seeds=True)
    if targets is not None:
        config = _with_targets(model, config, targets)
    if not config.target_module_types and not config.target_module_paths:
        config = dataclasses.replace(config, target_module_paths=tuple(default_sites(model, example_input)))
    paths = target_paths(model, config)
    shapes = activation_shapes(model, paths, example_input)
    mixing = sequence_mixing(model, [p for p, shape in shapes.items() if len(shape) == 2], example_input, config)
    layout = [
        descriptor(path, index, shape, causal=mixing.get(path, True))
        for index, (path, shape) in enumerate(shapes.items())
    ]
    if config.width_seeds:
        layout = _with_width_seeds(layout, width_sites(model, example_input, list(shapes)))
        if len(layout) > config.max_seeds:
            raise InvalidArgument.for_field(
                "kasmina.max_seeds", f"{len(layout)} seeds (depth and width) are more than {config.max_seeds}"
            )
    logger.info("wrapped %s with %d seeds: %s", type(model).__name__, len(layout), ", ".join(d.seed_id for d in layout))
    return MorphableModel(model, layout, config)


def _with_targets(model: nn.Module, config: KasminaConfig, targets: Sequence[str]) -> KasminaConfig:
    """`targets` split into paths (names of the model's modules) and type names; InvalidArgument naming `targets`."""
    if isinstance(targets, str) or not all(isinstance(target, str) and target for target in targets):
        raise InvalidArgument.for_field("targets", "must be a list of module type names or dotted module paths")
    modules = dict(model.named_modules())
    present = {type(module).__name__ for module in modules.values()}
    paths = tuple(target for target in targets if target in modules)
    types = tuple(target for target in targets if target not in modules)
    unknown = [target for target in types if target not in present]
    if unknown:
        raise InvalidArgument.for_field(
            "targets",
            f"{', '.join(map(repr, unknown))} is neither a module path of the model nor a module type in it "
            f"(types: {', '.join(sorted(present))})",
        )
    return dataclasses.replace(config, target_module_types=types, target_module_paths=paths)


ACTIVATION_TYPES = ("ReLU", "GELU", "SiLU", "LeakyReLU", "ELU", "Mish", "Tanh", "Hardswish", "ReLU6")


def default_sites(model: nn.Module, example_input: Any) -> list[str]:
    """Where seeds go when no target is named: block outputs, else activations (module paths, forward order).

    A block is a member of a ModuleList or Sequential that has modules of its own and
    returns a tensor of its input's shape (a transformer layer, a residual block). Without
    blocks, the activation modules (`ACTIVATION_TYPES`) are the sites. Modules that run
    more than once per forward are skipped (a seed needs a single site).
    """
    calls = _module_calls(model, example_input)
    containers = [module for module in model.modules() if isinstance(module, nn.ModuleList | nn.Sequential)]
    members = {id(child) for container in containers for child in container.children()}
    blocks = [
        path
        for path, (module, count, same_shape) in calls.items()
        if count == 1 and same_shape and id(module) in members and list(module.children())
    ]
    # Nested blocks (a Sequential of blocks inside a block list): the outermost ones are the sites.
    blocks = [path for path in blocks if not any(path.startswith(other + ".") for other in blocks)]
    if blocks:
        return blocks
    activations = [
        path for path, (module, count, _) in calls.items() if count == 1 and type(module).__name__ in ACTIVATION_TYPES
    ]
    if not activations:
        raise InvalidArgument.for_field(
            "targets",
            f"found no repeated blocks and no activation modules in {type(model).__name__}; "
            "name the modules seeds should follow (targets=[...])",
        )
    return activations


def _module_calls(model: nn.Module, example_input: Any) -> dict[str, tuple[nn.Module, int, bool]]:
    """Path -> (module, calls in one forward, output is a tensor shaped like its first input), in call order."""
    seen: dict[str, tuple[nn.Module, int, bool]] = {}

    def recorder(path: str) -> Any:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            first = args[0] if args and isinstance(args[0], Tensor) else None
            same = isinstance(output, Tensor) and first is not None and output.shape == first.shape
            count = seen[path][1] + 1 if path in seen else 1
            seen[path] = (module, count, same and (path not in seen or seen[path][2]))

        return record

    handles = [module.register_forward_hook(recorder(path)) for path, module in model.named_modules() if path]
    _dry_forward(model, example_input, handles)
    return seen


def _dry_forward(model: nn.Module, example_input: Any, handles: list[Any]) -> Any:
    """One forward in eval mode without gradients, the model's modes and the hooks restored after."""
    modes = {name: module.training for name, module in model.named_modules()}
    try:
        model.eval()
        with torch.no_grad():
            return model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for name, module in model.named_modules():
            module.training = modes.get(name, module.training)


def sequence_mixing(model: nn.Module, paths: list[str], example_input: Any, config: KasminaConfig) -> dict[str, bool]:
    """Path -> True when the [tokens, features] site at `path` is causal (see `wrap`)."""
    if not paths or config.sequence_mixing != "auto":
        return dict.fromkeys(paths, config.sequence_mixing != "bidirectional")
    changed = _perturb_last_token(example_input)
    if changed is None:
        return dict.fromkeys(paths, True)
    before = _site_outputs(model, paths, example_input)
    after = _site_outputs(model, paths, changed)
    causal = {}
    for path in paths:
        earlier_moved = not torch.allclose(before[path][:, :-1], after[path][:, :-1], rtol=0.0, atol=1e-6)
        causal[path] = not earlier_moved
    return causal


def _perturb_last_token(example_input: Any) -> Tensor | None:
    """The example with its last token changed (a [batch, tokens, ...] tensor), or None if it is no such thing."""
    if not isinstance(example_input, Tensor) or example_input.dim() < 2 or example_input.shape[1] < 2:
        return None
    changed = example_input.clone()
    if changed.is_floating_point():
        changed[:, -1] += 1.0
    else:
        top = int(example_input.max().item()) + 1
        changed[:, -1] = (changed[:, -1] + 1) % max(top, 2)
    return changed


def _site_outputs(model: nn.Module, paths: list[str], example_input: Tensor) -> dict[str, Tensor]:
    outputs: dict[str, Tensor] = {}

    def recorder(path: str) -> Any:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            outputs[path] = output.detach().clone()

        return record

    handles = [model.get_submodule(path).register_forward_hook(recorder(path)) for path in paths]
    _dry_forward(model, example_input, handles)
    return outputs


def target_paths(model: nn.Module, config: KasminaConfig) -> list[str]:
    """Paths of the modules `config` targets; InvalidArgument naming the config key if one matches nothing."""
    modules = dict(model.named_modules())
    for path in config.target_module_paths:
        if not path or path not in modules:
            raise InvalidArgument.for_field("kasmina.target_module_paths", f"model has no module at path {path!r}")
    type_names = set(config.target_module_types)
    present = {type(module).__name__ for module in modules.values()}
    missing = sorted(type_names - present)
    if missing:
        raise InvalidArgument.for_field(
            "kasmina.target_module_types",
            f"model has no module of type {', '.join(missing)}; it has {', '.join(sorted(present))}",
        )
    paths = [
        path
        for path, module in modules.items()
        if path and (type(module).__name__ in type_names or path in config.target_module_paths)
    ]
    if not paths:
        raise InvalidArgument.for_field(
            "kasmina.target_module_types", "no target: set target_module_types and/or target_module_paths"
        )
    if len(paths) > config.max_seeds:
        raise InvalidArgument.for_field(
            "kasmina.max_seeds", f"{len(paths)} modules match the targets, more than {config.max_seeds}"
        )
    return paths


def activation_shapes(model: nn.Module, paths: list[str], example_input: Tensor) -> dict[str, list[int]]:
    """Output shape (without batch) of each target, in the order the forward reaches them."""
    shapes: dict[str, list[int]] = {}
    handles = []
    for path in paths:
        handles.append(model.get_submodule(path).register_forward_hook(_recorder(path, shapes)))
    modes = {name: module.training for name, module in model.named_modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for name, module in model.named_modules():
            module.training = modes.get(name, module.training)
    never = [path for path in paths if path not in shapes]
    if never:
        raise InvalidArgument.for_field(
            "kasmina.target_module_paths", f"the example forward never reached {', '.join(never)}"
        )
    return shapes


def _recorder(path: str, shapes: dict[str, list[int]]) -> Any:
    def record(module: nn.Module, args: Any, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise InvalidArgument.for_field(
                "kasmina.target_module_paths",
                f"module {path!r} returns {type(output).__name__}, not a tensor",
            )
        if path in shapes:
            raise InvalidArgument.for_field(
                "kasmina.target_module_paths",
                f"module {path!r} runs more than once per forward; a seed needs a single site",
            )
        shapes[path] = list(output.shape[1:])

    return record


def descriptor(path: str, layer_index: int, shape: list[int], *, causal: bool = False) -> telemetry_pb2.SeedDescriptor:
    kind = _KIND_BY_RANK.get(len(shape))
    if kind == blueprint_pb2.INPUT_KIND_SEQUENCE and causal:
        kind = blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE
    if kind is None:
        raise InvalidArgument.for_field(
            "kasmina.target_module_paths",
            f"module {path!r} outputs [batch, {', '.join(map(str, shape))}]; "
            "seeds take activations of rank 1, 2 or 3 (without batch)",
        )
    units = shape[0] if kind == blueprint_pb2.INPUT_KIND_IMAGE else shape[-1]
    result = telemetry_pb2.SeedDescriptor(
        seed_id=path,
        layer_index=layer_index,
        input_kind=kind,
        growth_kind=blueprint_pb2.GROWTH_KIND_DEPTH,
        site=path,
        layer_units=units,
    )
    result.input_shape.dims.extend(shape)
    return result


WIDTH_SEED_PREFIX = "w:"


@dataclass(frozen=True)
class _Call:
    """One call of a leaf module in the dry forward: its position, first input and output (copies)."""

    order: int
    path: str
    module: nn.Module
    input: Tensor | None
    output: Tensor | None


@dataclass(frozen=True)
class WidthSite:
    """A layer a width seed can widen: L at `layer`, N at `next_layer`, and where it ran among the targets."""

    layer: str
    next_layer: str
    input_shape: list[int]
    output_shape: list[int]
    units: int
    targets_before: int


def width_sites(model: nn.Module, example_input: Tensor, targets: list[str]) -> list[WidthSite]:
    """The layers of `model` whose pattern up to the next layer a width template repeats exactly."""
    calls = _leaf_calls(model, example_input, targets)
    leaves = [call for call in calls if not list(call.module.children())]
    counts: dict[str, int] = {}
    for call in leaves:
        counts[call.path] = counts.get(call.path, 0) + 1
    target_orders = [call.order for call in calls if call.path in targets]
    sites = []
    for index, layer in enumerate(leaves):
        if not _widenable(layer.module) or counts[layer.path] > 1:
            continue
        following = leaves[index + 1 :]
        nxt = next((i for i, call in enumerate(following) if isinstance(call.module, nn.Linear | nn.Conv2d)), None)
        if nxt is None or counts[following[nxt].path] > 1:
            continue
        between, after = following[:nxt], following[nxt]
        if not _pattern(layer.module, [call.module for call in between], after.module):
            continue
        if not _exact(layer, between, after):
            continue
        assert layer.input is not None and after.output is not None
        module = layer.module
        units = module.out_features if isinstance(module, nn.Linear) else module.out_channels
        assert isinstance(units, int)
        sites.append(
            WidthSite(
                layer=layer.path,
                next_layer=after.path,
                input_shape=list(layer.input.shape[1:]),
                output_shape=list(after.output.shape[1:]),
                units=units,
                targets_before=sum(order < layer.order for order in target_orders),
            )
        )
    return sites


def width_descriptor(site: WidthSite, layer_index: int) -> telemetry_pb2.SeedDescriptor:
    kind = blueprint_pb2.INPUT_KIND_FEATURES if len(site.input_shape) == 1 else blueprint_pb2.INPUT_KIND_IMAGE
    result = telemetry_pb2.SeedDescriptor(
        seed_id=f"{WIDTH_SEED_PREFIX}{site.layer}",
        layer_index=layer_index,
        input_kind=kind,
        growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH,
        site=site.layer,
        output_site=site.next_layer,
        layer_units=site.units,
    )
    result.input_shape.dims.extend(site.input_shape)
    result.output_shape.dims.extend(site.output_shape)
    return result


def _with_width_seeds(
    depth: list[telemetry_pb2.SeedDescriptor], sites: list[WidthSite]
) -> list[telemetry_pb2.SeedDescriptor]:
    """Width seeds inserted before the first depth seed that runs after their layer, in forward order."""
    layout: list[telemetry_pb2.SeedDescriptor] = []
    pending = sorted(sites, key=lambda site: site.targets_before)
    for index, seed in enumerate(depth):
        while pending and pending[0].targets_before <= index:
            layout.append(width_descriptor(pending.pop(0), index))
        layout.append(seed)
    layout.extend(width_descriptor(site, len(depth)) for site in pending)
    return layout


def _leaf_calls(model: nn.Module, example_input: Tensor, targets: list[str]) -> list[_Call]:
    """Every call of a leaf module (and of every target) in one dry forward, in the order they finished."""
    calls: list[_Call] = []
    handles = []
    watched = {path for path, module in model.named_modules() if path and not list(module.children())}
    for path in sorted(watched | set(targets)):
        handles.append(model.get_submodule(path).register_forward_hook(_call_recorder(path, calls)))
    modes = {name: module.training for name, module in model.named_modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for name, module in model.named_modules():
            module.training = modes.get(name, module.training)
    return calls


def _call_recorder(path: str, calls: list[_Call]) -> Any:
    def record(module: nn.Module, args: Any, output: Any) -> None:
        first = args[0] if args and isinstance(args[0], Tensor) else None
        out = output if isinstance(output, Tensor) else None
        # Copies: an in-place op later in the forward must not change what was recorded.
        calls.append(
            _Call(
                len(calls),
                path,
                module,
                first.detach().clone() if first is not None else None,
                out.detach().clone() if out is not None else None,
            )
        )

    return record


def _is_relu(module: nn.Module) -> bool:
    return type(module) is nn.ReLU


def _is_conv3(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.padding == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def _is_pool2(module: nn.Module) -> bool:
    return (
        type(module) is nn.MaxPool2d
        and module.kernel_size in (2, (2, 2))
        and module.stride in (2, (2, 2))
        and module.padding in (0, (0, 0))
        and module.dilation in (1, (1, 1))
        and not module.ceil_mode
        and not module.return_indices
    )


def _widenable(module: nn.Module) -> bool:
    return type(module) is nn.Linear or _is_conv3(module)


def _pattern(layer: nn.Module, between: list[nn.Module], after: nn.Module) -> bool:
    """The module types between L and N are a pattern the width templates build."""
    if not between or not _is_relu(between[0]):
        return False
    rest = between[1:]
    if type(layer) is nn.Linear:
        return not rest and type(after) is nn.Linear
    if _is_conv3(after):
        return not rest or (len(rest) == 1 and _is_pool2(rest[0]))
    if len(rest) != 2 or not _is_pool2(rest[0]) or type(after) is not nn.Linear:
        return False
    flatten = rest[1]
    return isinstance(flatten, nn.Flatten) and (flatten.start_dim, flatten.end_dim) == (1, -1)


def _exact(layer: _Call, between: list[_Call], after: _Call) -> bool:
    """The modules between L and N, applied to L's output, give exactly what N received."""
    if layer.input is None or layer.output is None or after.input is None or after.output is None:
        return False
    rank = layer.input.dim() - 1
    if (type(layer.module) is nn.Linear and rank != 1) or (type(layer.module) is nn.Conv2d and rank != 3):
        return False
    value = layer.output.clone()
    with torch.no_grad():
        for call in between:
            value = call.module(value)
    if value.shape != after.input.shape:
        return False
    return bool(torch.equal(value, after.input))
