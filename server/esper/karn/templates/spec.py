"""A catalog template: metadata plus a builder parametric in the site's shapes.

A depth seed blends `host + alpha * block(host)`, so every depth block computes a
delta at the site's shape. A width seed adds `alpha * block(x)` to the next layer's
output, so a width block is built for two shapes: what enters the widened layer and
what the next layer outputs. Either way the last layer starts small
(`LAST_LAYER_INIT_SCALE` times the default init, or a SCALE initialized to that
value) so grafting starts gently whatever alpha does.
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
# A width block's body also gets the output shape it must produce.
WidthBody = Callable[[IRBuilder, tuple[int, ...]], str]
Requirement = Callable[[tuple[int, ...]], str | None]

SAFE = blueprint_pb2.BLUEPRINT_TIER_SAFE
EXPERIMENTAL = blueprint_pb2.BLUEPRINT_TIER_EXPERIMENTAL
ADVERSARIAL = blueprint_pb2.BLUEPRINT_TIER_ADVERSARIAL
FEATURES = blueprint_pb2.INPUT_KIND_FEATURES
IMAGE = blueprint_pb2.INPUT_KIND_IMAGE
SEQUENCE = blueprint_pb2.INPUT_KIND_SEQUENCE
CAUSAL_SEQUENCE = blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE

DEFAULT_SHAPES: dict[int, tuple[int, ...]] = {
    FEATURES: (64,),
    IMAGE: (16, 8, 8),
    SEQUENCE: (8, 32),
    CAUSAL_SEQUENCE: (8, 32),
}
# Width blocks at their default shapes: into the next layer's [64] features, or the
# next conv's [16, 4, 4] map after a 2x2 max pool.
DEFAULT_WIDTH_OUTPUT_SHAPES: dict[int, tuple[int, ...]] = {FEATURES: (64,), IMAGE: (16, 4, 4)}
DEPTH = blueprint_pb2.GROWTH_KIND_DEPTH
WIDTH = blueprint_pb2.GROWTH_KIND_WIDTH
_RANKS: dict[int, int] = {FEATURES: 1, IMAGE: 3, SEQUENCE: 2, CAUSAL_SEQUENCE: 2}


def no_requirement(shape: tuple[int, ...]) -> str | None:
    return None


@dataclass(frozen=True)
class TemplateSpec:
    """One template. `body` adds the block's ops after the builder's input and returns its output node.

    A width template (`growth_kind` WIDTH) has `width_body` instead, which also gets
    the output shape; it is built for an (input shape, output shape) pair.
    """

    template_id: str
    name: str
    tier: int
    description: str
    input_kind: int
    tags: tuple[str, ...]
    body: Body | None
    requires: Requirement = no_requirement
    default_input_shape: tuple[int, ...] = field(default=())
    growth_kind: int = blueprint_pb2.GROWTH_KIND_UNSPECIFIED
    width_body: WidthBody | None = None
    default_output_shape: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.default_input_shape:
            object.__setattr__(self, "default_input_shape", DEFAULT_SHAPES[self.input_kind])
        if self.is_width:
            if self.width_body is None:
                raise ValueError(f"width template {self.template_id!r} needs a width_body")
            if not self.default_output_shape:
                object.__setattr__(self, "default_output_shape", DEFAULT_WIDTH_OUTPUT_SHAPES[self.input_kind])
        elif self.body is None:
            raise ValueError(f"template {self.template_id!r} needs a body")

    @property
    def is_width(self) -> bool:
        return self.growth_kind == WIDTH

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

    def build(
        self, input_shape: Sequence[int], init_seed: int = 0, *, output_shape: Sequence[int] | None = None
    ) -> blueprint_pb2.BlueprintIR:
        """The block's IR at `input_shape` (and, for width, `output_shape`); InvalidArgument if it does not fit."""
        result = self.try_build(input_shape, init_seed, output_shape=output_shape)
        if isinstance(result, str):
            raise InvalidArgument.for_field("input_shape", result)
        return result

    def try_build(
        self, input_shape: Sequence[int], init_seed: int = 0, *, output_shape: Sequence[int] | None = None
    ) -> blueprint_pb2.BlueprintIR | str:
        """The block's IR at its shapes, or why the template does not fit them.

        `output_shape` is required by width templates and must be absent or equal
        to `input_shape` for depth templates.
        """
        problem = self.incompatibility(input_shape)
        out = tuple(output_shape) if output_shape else None
        if problem is None and self.is_width and out is None:
            problem = "a width template needs the output shape it adds into"
        if problem is None and not self.is_width and out is not None and out != tuple(input_shape):
            problem = f"a depth template keeps its shape; output {list(out)} was asked"
        if problem is None and out is not None and any(not 1 <= dim <= MAX_DIM for dim in out):
            problem = f"every output dim must be in [1, {MAX_DIM}], got {list(out)}"
        if problem is None:
            builder = IRBuilder(self.input_kind, input_shape, init_seed=init_seed, growth_kind=self.growth_kind)
            try:
                if self.is_width:
                    assert self.width_body is not None and out is not None
                    return builder.build(self.width_body(builder, out))
                assert self.body is not None
                return builder.build(self.body(builder))
            except InvalidArgument as error:
                problem = error.violations[0].description if error.violations else error.message
        shapes = f"input shape {list(input_shape)}" + (f", output shape {list(out)}" if self.is_width and out else "")
        return f"template {self.template_id!r} does not fit {shapes}: {problem}"


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


def width_template(
    template_id: str,
    name: str,
    tier: int,
    input_kind: int,
    description: str,
    tags: Sequence[str],
    body: WidthBody,
) -> TemplateSpec:
    return TemplateSpec(
        template_id,
        name,
        tier,
        description,
        input_kind,
        tuple(tags),
        None,
        growth_kind=WIDTH,
        width_body=body,
    )
