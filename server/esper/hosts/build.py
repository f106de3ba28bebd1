"""Esper's default hosts: deliberately small networks that growth has to improve.

MLP and CNN hosts are `Host`s (an nn.Sequential of named layers); the residual CNN and
the causal transformer are stacks of blocks (esper.hosts.blocks).
"""

from __future__ import annotations

from collections import OrderedDict
from math import prod

import torch
from torch import nn

from esper.errors import InvalidArgument
from esper.hosts.blocks import CausalTransformer, ResidualCNN
from esper.hosts.spec import HostSpec
from esper.leyline.v1 import blueprint_pb2

DEFAULT_MLP_WIDTH = 16
# Three channels: under capacity on purpose, so growth has something to fix. Measured side by
# side, residual conv blocks lift such a host clearly on digits and mnist5k (bench/efficacy.py).
DEFAULT_CNN_WIDTH = 3
DEFAULT_RESCNN_WIDTH = 8
DEFAULT_TRANSFORMER_WIDTH = 16
SEED_SITE_TYPE = "ReLU"


class Host(nn.Sequential):
    """A default host: an `nn.Sequential` with named layers and the spec it was built from.

    Layer names: MLP `fc1, act1, ..., fcN, actN, classifier`; CNN `conv1, act1, pool1,
    ..., flatten, classifier`. Seeds belong after the `act<i>` ReLUs.
    """

    def __init__(self, spec: HostSpec, layers: OrderedDict[str, nn.Module]) -> None:
        super().__init__(layers)
        self.spec = spec

    @property
    def seed_sites(self) -> tuple[str, ...]:
        return default_seed_sites(self.spec)


def default_seed_sites(spec: HostSpec) -> tuple[str, ...]:
    """Module paths after which depth seeds go, in forward order: the hidden ReLUs, or the blocks."""
    if spec.kind in ("transformer", "rescnn"):
        return tuple(f"blocks.{i}" for i in range(spec.depth))
    return tuple(f"act{i}" for i in range(1, spec.depth + 1))


def _mlp_layers(spec: HostSpec) -> OrderedDict[str, nn.Module]:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    features = spec.input_shape[0]
    for i in range(1, spec.depth + 1):
        layers[f"fc{i}"] = nn.Linear(features, spec.width)
        layers[f"act{i}"] = nn.ReLU()
        features = spec.width
    layers["classifier"] = nn.Linear(features, spec.num_classes)
    return layers


def _cnn_layers(spec: HostSpec) -> OrderedDict[str, nn.Module]:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, height, width = spec.input_shape
    for i in range(1, spec.depth + 1):
        layers[f"conv{i}"] = nn.Conv2d(channels, spec.width, kernel_size=3, padding=1)
        layers[f"act{i}"] = nn.ReLU()
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        channels, height, width = spec.width, height // 2, width // 2
    layers["flatten"] = nn.Flatten()
    # [batch, width, h / 2**depth, w / 2**depth] → [batch, classes]
    layers["classifier"] = nn.Linear(prod((channels, height, width)), spec.num_classes)
    return layers


def build_host(spec: HostSpec) -> nn.Module:
    """Build the host for `spec`; the same spec always gives the same initial weights.

    The initialization draws from a forked RNG seeded with `spec.init_seed`, so it
    neither depends on nor disturbs the caller's global torch RNG. Every host carries
    its `spec` (save_model records it, load_model rebuilds from it).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        if spec.kind == "transformer":
            host: nn.Module = CausalTransformer(spec.num_classes, spec.input_shape[0], spec.width, spec.depth)
        elif spec.kind == "rescnn":
            host = ResidualCNN(spec.input_shape, spec.num_classes, spec.width, spec.depth)
        else:
            return Host(spec, _mlp_layers(spec) if spec.kind == "mlp" else _cnn_layers(spec))
    host.spec = spec  # type: ignore[assignment]
    return host


def default_host_spec(
    input_kind: blueprint_pb2.InputKind,
    input_shape: tuple[int, ...] | list[int],
    num_classes: int,
    width: int | None = None,
    *,
    depth: int | None = None,
    init_seed: int = 0,
    kind: str = "auto",
) -> HostSpec:
    """The default host for a dataset: an MLP for FEATURES, a CNN for IMAGE inputs, a transformer for SEQUENCE.

    `kind` "auto" picks by input kind; "mlp", "cnn", "rescnn" or "transformer" asks for
    one (InvalidArgument naming `host.kind` if it cannot take the inputs). `width` None
    (or 0, as RunConfig.host_width sends it) picks the small default: 16 hidden units, 3
    channels (CNN), 8 channels (residual CNN) or a width of 16 (transformer); `depth` None
    picks 2 layers, or one transformer block.
    """
    chosen = kind if kind != "auto" else _AUTO_KINDS.get(input_kind, "")
    if not chosen:
        known = input_kind in blueprint_pb2.InputKind.values()
        name = blueprint_pb2.InputKind.Name(input_kind) if known else str(input_kind)
        raise InvalidArgument.for_field(
            "host.input_kind", f"no default host for {name}; default hosts take FEATURES, IMAGE or SEQUENCE inputs"
        )
    fits = _KIND_INPUTS.get(chosen)
    if fits is None:
        raise InvalidArgument.for_field("host.kind", f"must be auto or one of {', '.join(_KIND_INPUTS)}, got {kind!r}")
    if input_kind not in fits:
        name = blueprint_pb2.InputKind.Name(input_kind)
        raise InvalidArgument.for_field("host.kind", f"a {chosen} host cannot take {name} inputs")
    default_depth = 1 if chosen == "transformer" else 2
    return HostSpec(
        chosen,  # type: ignore[arg-type]
        tuple(input_shape),
        num_classes,
        width or _DEFAULT_WIDTHS[chosen],
        depth or default_depth,
        init_seed,
    )


_AUTO_KINDS = {
    blueprint_pb2.INPUT_KIND_FEATURES: "mlp",
    blueprint_pb2.INPUT_KIND_IMAGE: "cnn",
    blueprint_pb2.INPUT_KIND_SEQUENCE: "transformer",
}
_KIND_INPUTS = {
    "mlp": (blueprint_pb2.INPUT_KIND_FEATURES,),
    "cnn": (blueprint_pb2.INPUT_KIND_IMAGE,),
    "rescnn": (blueprint_pb2.INPUT_KIND_IMAGE,),
    "transformer": (blueprint_pb2.INPUT_KIND_SEQUENCE,),
}
_DEFAULT_WIDTHS = {
    "mlp": DEFAULT_MLP_WIDTH,
    "cnn": DEFAULT_CNN_WIDTH,
    "rescnn": DEFAULT_RESCNN_WIDTH,
    "transformer": DEFAULT_TRANSFORMER_WIDTH,
}
