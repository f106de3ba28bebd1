"""A catalog template: metadata plus a builder parametric in the site's input shape.

A seed blends `host + alpha * block(host)`, so every block computes a delta. Its
last layer starts small (`LAST_LAYER_INIT_SCALE` times the default init, or a
SCALE initialized to that value) so grafting starts gently whatever alpha does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from esper.errors import InvalidArgument
from esper.ir import IRBuilder
from esper.ir.limits import MAX_DIM
from esper.leyline.v1 import blueprint_pb2

LAST_LAYER_INIT_SCALE = 0.1

Body = Callable[[IRBuilder], str]
Requirement = Callable[[tuple[int, ...]], str | None]

SAFE = blueprint_pb2.BLUEPRINT_TIER_SAFE
EXPERIMENTAL = blueprint_pb2.BLUEPRINT_TIER_EXPERIMENTAL
ADVERSARIAL = blueprint_pb2.BLUEPRINT_TIER_ADVERSARIAL
FEATURES = blueprint_pb2.INPUT_KIND_FEATURES
IMAGE = blueprint_pb2.INPUT_KIND_IMAGE
SEQUENCE = blueprint_pb2.INPUT_KIND_SEQUENCE

DEFAULT_SHAPES: dict[int, tuple[int, ...]] = {FEATURES: (64,), IMAGE: (16, 8, 8), SEQUENCE: (8, 32)}
_RANKS: dict[int, int] = {FEATURES: 1, IMAGE: 3, SEQUENCE: 2}


def no_requirement(shape: tuple[int, ...]) -> str | None:
    return None


@dataclass(frozen=True)
class TemplateSpec:
    """One template. `body` adds the block's ops after the builder's input and returns its output node."""

    template_id: str
    name: str
    tier: int
    description: str
    input_kind: int
    tags: tuple[str, ...]
    body: Body
    requires: Requirement = no_requirement
    default_input_shape: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.default_input_shape:
            object.__setattr__(self, "default_input_shape", DEFAULT_SHAPES[self.input_kind])

    def incompatibility(self, input_shape: Sequence[int]) -> str | None:
        """Why the template cannot be built at `input_shape`, or None if it can."""
        shape = tuple(input_shape)
        rank = _RANKS[self.input_kind]
        if len(shape) != rank:
            kind = blueprint_pb2.InputKind.Name(self.input_kind)
            return f"{kind} templates need a shape of rank {rank}, got {list(shape)}"
        if any(not 1 <= dim <= MAX_DIM for dim in shape):
            return f"every dim must be in [1, {MAX_DIM}], got {list(shape)}"
        return self.requires(shape)

    def build(self, input_shape: Sequence[int], init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
        """The block's IR at `input_shape`; InvalidArgument on `input_shape` if it does not fit."""
        result = self.try_build(input_shape, init_seed)
        if isinstance(result, str):
            raise InvalidArgument.for_field("input_shape", result)
        return result

    def try_build(self, input_shape: Sequence[int], init_seed: int = 0) -> blueprint_pb2.BlueprintIR | str:
        """The block's IR at `input_shape`, or why the template does not fit that shape."""
        problem = self.incompatibility(input_shape)
        if problem is None:
            builder = IRBuilder(self.input_kind, input_shape, init_seed=init_seed)
            try:
                return builder.build(self.body(builder))
            except InvalidArgument as error:
                problem = error.violations[0].description if error.violations else error.message
        return f"template {self.template_id!r} does not fit input shape {list(input_shape)}: {problem}"


def template(
    template_id: str,
    name: str,
    tier: int,
    input_kind: int,
    description: str,
    tags: Sequence[str],
    body: Body,
    requires: Requirement = no_requirement,
) -> TemplateSpec:
    return TemplateSpec(template_id, name, tier, description, input_kind, tuple(tags), body, requires)
