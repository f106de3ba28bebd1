"""`wrap`: place Kasmina seeds after chosen modules of any PyTorch model."""

from __future__ import annotations

import logging
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


def wrap(model: nn.Module, config: KasminaConfig, *, example_input: Tensor) -> MorphableModel:
    """A MorphableModel with a dormant seed after every module `config` targets.

    Targets are modules whose type name is in `config.target_module_types` or whose
    path is in `config.target_module_paths`. One forward of `example_input` (a batch,
    run without gradients in eval mode, the model's modes restored after) records
    each target's output shape, which fixes the seed's input kind and shape, and the
    order activations flow through them, which is the seed layout.
    """
    paths = target_paths(model, config)
    shapes = activation_shapes(model, paths, example_input)
    layout = [descriptor(path, index, shape) for index, (path, shape) in enumerate(shapes.items())]
    logger.info("wrapped %s with %d seeds: %s", type(model).__name__, len(layout), ", ".join(shapes))
    return MorphableModel(model, layout, config)


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


def descriptor(path: str, layer_index: int, shape: list[int]) -> telemetry_pb2.SeedDescriptor:
    kind = _KIND_BY_RANK.get(len(shape))
    if kind is None:
        raise InvalidArgument.for_field(
            "kasmina.target_module_paths",
            f"module {path!r} outputs [batch, {', '.join(map(str, shape))}]; "
            "seeds take activations of rank 1, 2 or 3 (without batch)",
        )
    result = telemetry_pb2.SeedDescriptor(seed_id=path, layer_index=layer_index, input_kind=kind)
    result.input_shape.dims.extend(shape)
    return result
