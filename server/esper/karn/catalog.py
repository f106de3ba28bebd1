"""Karn's tiered catalog of blueprint templates.

A template is a builder parametric in the site's shapes (see
`esper.karn.templates`). The catalog entry shows the IR at the template's default
shapes; `instantiate` and `query` build it at a site's. A depth site has one shape;
a width site two: what enters the layer to widen and the next layer's output. Every
`parameter_estimate` is computed from the IR, never typed in.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from esper.errors import InvalidArgument, NotFound
from esper.ir import NODE_ID_PATTERN, parameter_count
from esper.karn.templates import TemplateSpec, builtin_templates
from esper.leyline.v1 import blueprint_pb2

logger = logging.getLogger(__name__)

_UNSPECIFIED_TIER = blueprint_pb2.BLUEPRINT_TIER_UNSPECIFIED
_UNSPECIFIED_KIND = blueprint_pb2.INPUT_KIND_UNSPECIFIED
_DEFAULT_QUERY_LIMIT = 100
_CacheKey = tuple[str, tuple[int, ...], tuple[int, ...], int]
_DEPTH = blueprint_pb2.GROWTH_KIND_DEPTH
_WIDTH = blueprint_pb2.GROWTH_KIND_WIDTH


class TemplateCatalog:
    """Templates by id. Thread-safe; every returned proto is the caller's own copy."""

    def __init__(self, specs: Iterable[TemplateSpec], *, cache_size: int = 4096) -> None:
        self._specs: dict[str, TemplateSpec] = {}
        for spec in sorted(specs, key=lambda s: s.template_id):
            if not NODE_ID_PATTERN.fullmatch(spec.template_id):
                raise ValueError(f"template id {spec.template_id!r} must match [a-z0-9_]{{1,64}}")
            if spec.template_id in self._specs:
                raise ValueError(f"duplicate template id {spec.template_id!r}")
            self._specs[spec.template_id] = spec
        self._cache_size = cache_size
        self._cache: OrderedDict[_CacheKey, blueprint_pb2.BlueprintTemplate | str] = OrderedDict()
        self._lock = threading.Lock()
        self._entries = {template_id: self._default_entry(spec) for template_id, spec in self._specs.items()}
        logger.debug("template catalog with %d templates", len(self._entries))

    @classmethod
    def default(cls) -> TemplateCatalog:
        """The built-in catalog."""
        return cls(builtin_templates())

    def template_ids(self) -> list[str]:
        return list(self._specs)

    def spec(self, template_id: str) -> TemplateSpec:
        """The template's builder and metadata; NotFound (TEMPLATE_NOT_FOUND) if unknown."""
        spec = self._specs.get(template_id)
        if spec is None:
            raise NotFound(f"no template {template_id!r} in Karn's catalog", reason="TEMPLATE_NOT_FOUND")
        return spec

    def list_templates(
        self,
        *,
        tier: int = _UNSPECIFIED_TIER,
        tag: str = "",
        input_kind: int = _UNSPECIFIED_KIND,
        growth_kind: int = blueprint_pb2.GROWTH_KIND_UNSPECIFIED,
    ) -> list[blueprint_pb2.BlueprintTemplate]:
        """Entries at their default shape, sorted by id; unset filters match everything."""
        return [
            _copy(entry)
            for entry in self._entries.values()
            if (tier == _UNSPECIFIED_TIER or entry.tier == tier)
            and (not tag or tag in entry.tags)
            and (input_kind == _UNSPECIFIED_KIND or entry.input_kind == input_kind)
            and (not growth_kind or (entry.growth_kind or _DEPTH) == growth_kind)
        ]

    def get_template(self, template_id: str) -> blueprint_pb2.BlueprintTemplate:
        self.spec(template_id)
        return _copy(self._entries[template_id])

    def instantiate(
        self,
        template_id: str,
        input_shape: Sequence[int],
        *,
        init_seed: int = 0,
        output_shape: Sequence[int] | None = None,
    ) -> blueprint_pb2.BlueprintTemplate:
        """The template with its IR and parameter estimate at `input_shape` (and `output_shape`, for width).

        InvalidArgument on `input_shape` if the template does not fit them.
        """
        out = tuple(output_shape) if output_shape else ()
        result = self._instantiate(self.spec(template_id), tuple(input_shape), out, init_seed)
        if isinstance(result, str):
            raise InvalidArgument.for_field("input_shape", result)
        return _copy(result)

    def query(
        self,
        *,
        input_kind: int = _UNSPECIFIED_KIND,
        input_shape: Sequence[int] | None = None,
        tiers: Sequence[int] = (),
        tags_all: Sequence[str] = (),
        max_parameter_estimate: int = 0,
        limit: int = _DEFAULT_QUERY_LIMIT,
        growth_kind: int = blueprint_pb2.GROWTH_KIND_UNSPECIFIED,
        output_shape: Sequence[int] | None = None,
    ) -> list[blueprint_pb2.BlueprintTemplate]:
        """Templates that fit a site, fewest parameters first, then by id.

        `growth_kind` unset or DEPTH asks for depth templates, WIDTH for width ones.
        With `input_shape` (non-empty) each template is instantiated at it (width
        templates at `input_shape` -> `output_shape`, both required then) and
        skipped if it does not fit; otherwise entries are at their default shapes.
        Empty `tiers` means SAFE only; `max_parameter_estimate` 0 and `limit` <= 0
        mean no budget and the default limit of 100.
        """
        allowed_tiers = set(tiers) or {blueprint_pb2.BLUEPRINT_TIER_SAFE}
        shape = tuple(input_shape) if input_shape else None
        wanted = growth_kind or _DEPTH
        out = tuple(output_shape) if output_shape and wanted == _WIDTH else ()
        matches: list[blueprint_pb2.BlueprintTemplate] = []
        for template_id, spec in self._specs.items():
            if spec.tier not in allowed_tiers or not set(tags_all) <= set(spec.tags):
                continue
            if input_kind != _UNSPECIFIED_KIND and spec.input_kind != input_kind:
                continue
            if (spec.growth_kind or _DEPTH) != wanted:
                continue
            entry = self._entries[template_id] if shape is None else self._instantiate(spec, shape, out, 0)
            if isinstance(entry, str):
                continue
            if max_parameter_estimate and entry.parameter_estimate > max_parameter_estimate:
                continue
            matches.append(entry)
        matches.sort(key=lambda entry: (entry.parameter_estimate, entry.template_id))
        return [_copy(entry) for entry in matches[: limit if limit > 0 else _DEFAULT_QUERY_LIMIT]]

    def _default_entry(self, spec: TemplateSpec) -> blueprint_pb2.BlueprintTemplate:
        return _entry(spec, spec.build(spec.default_input_shape, output_shape=spec.default_output_shape or None))

    def _instantiate(
        self, spec: TemplateSpec, shape: tuple[int, ...], output_shape: tuple[int, ...], init_seed: int
    ) -> blueprint_pb2.BlueprintTemplate | str:
        """The entry at its shapes, or why the template does not fit them; cached either way."""
        key = (spec.template_id, shape, output_shape, init_seed)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        ir = spec.try_build(shape, init_seed, output_shape=output_shape or None)
        result = ir if isinstance(ir, str) else _entry(spec, ir)
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result


def _entry(spec: TemplateSpec, ir: blueprint_pb2.BlueprintIR) -> blueprint_pb2.BlueprintTemplate:
    return blueprint_pb2.BlueprintTemplate(
        template_id=spec.template_id,
        name=spec.name,
        tier=spec.tier,  # type: ignore[arg-type]
        description=spec.description,
        input_kind=spec.input_kind,  # type: ignore[arg-type]
        ir=ir,
        parameter_estimate=parameter_count(ir),
        tags=spec.tags,
        growth_kind=spec.growth_kind,  # type: ignore[arg-type]
    )


def _copy(entry: blueprint_pb2.BlueprintTemplate) -> blueprint_pb2.BlueprintTemplate:
    copy = blueprint_pb2.BlueprintTemplate()
    copy.CopyFrom(entry)
    return copy
