"""The asset pipeline as seen by a run, over any UrzaServiceApi (in-process hub or remote client).

Submit the catalog's templates at every seed site's shape (depth templates at depth
sites, width templates at width sites' input and output shapes), optionally wait
until Tezzeret and Urabrask have settled them, and keep the kernel cache warm off the
training path: `follow_kernels` loads every kernel that fits a site as soon as it is
validated, until the run stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from esper.errors import EsperError, InvalidArgument
from esper.karn.catalog import TemplateCatalog
from esper.kasmina.kernel_cache import KernelCache
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, telemetry_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.tamiyo.kernels import best_per_blueprint

logger = logging.getLogger(__name__)

_SETTLED = {
    blueprint_pb2.BLUEPRINT_STATUS_VALIDATED,
    blueprint_pb2.BLUEPRINT_STATUS_FAILED,
    blueprint_pb2.BLUEPRINT_STATUS_REJECTED,
}


@dataclass(frozen=True)
class SeedSite:
    """Where a seed sits: the kernels it can take consume `input_shape` and, for a width seed,
    produce `output_shape` (empty for a depth seed, whose kernels keep the shape)."""

    input_kind: blueprint_pb2.InputKind
    input_shape: tuple[int, ...]
    growth_kind: blueprint_pb2.GrowthKind = blueprint_pb2.GROWTH_KIND_DEPTH
    output_shape: tuple[int, ...] = ()

    @classmethod
    def of(cls, descriptor: telemetry_pb2.SeedDescriptor) -> SeedSite:
        width = descriptor.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH
        return cls(
            descriptor.input_kind,
            tuple(descriptor.input_shape.dims),
            blueprint_pb2.GROWTH_KIND_WIDTH if width else blueprint_pb2.GROWTH_KIND_DEPTH,
            tuple(descriptor.output_shape.dims) if width else (),
        )

    @property
    def is_width(self) -> bool:
        return self.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH

    @property
    def kernel_output_shape(self) -> tuple[int, ...]:
        return self.output_shape if self.is_width else self.input_shape


def templates_for(
    catalog: TemplateCatalog, site: SeedSite, template_ids: Sequence[str]
) -> list[blueprint_pb2.BlueprintTemplate]:
    """The configured templates of the site's kind (default: the SAFE tier) instantiated at its shapes."""
    if not template_ids:
        return catalog.query(
            input_kind=site.input_kind,
            input_shape=site.input_shape,
            tiers=[blueprint_pb2.BLUEPRINT_TIER_SAFE],
            limit=1000,
            growth_kind=site.growth_kind,
            output_shape=site.output_shape,
        )
    templates = []
    for template_id in template_ids:
        if catalog.spec(template_id).is_width != site.is_width:
            continue
        try:
            templates.append(catalog.instantiate(template_id, site.input_shape, output_shape=site.output_shape or None))
        except InvalidArgument as exc:
            logger.info("template %s does not fit %s: %s", template_id, site, exc)
    return templates


@dataclass(frozen=True)
class SubmittedBlueprint:
    """A blueprint submitted for a site: the site's index among the distinct sites, its kind and size."""

    blueprint_id: str
    site_index: int
    growth_kind: blueprint_pb2.GrowthKind
    parameter_estimate: int


def distinct_sites(sites: Iterable[SeedSite]) -> list[SeedSite]:
    return sorted(set(sites), key=lambda s: (s.growth_kind, s.input_kind, s.input_shape, s.output_shape))


def submit_blueprints(
    urza: UrzaServiceApi, catalog: TemplateCatalog, template_ids: Sequence[str], sites: Iterable[SeedSite]
) -> list[SubmittedBlueprint]:
    """Submit the templates at every distinct site shape (idempotent); one entry per (site, blueprint)."""
    submitted: list[SubmittedBlueprint] = []
    for index, site in enumerate(distinct_sites(sites)):
        for template in templates_for(catalog, site, template_ids):
            response = urza.create_blueprint(
                urza_pb2.CreateBlueprintRequest(
                    ir=template.ir,
                    template_id=template.template_id,
                    name=template.name,
                    tier=template.tier,
                    tags=list(template.tags),
                )
            )
            blueprint = response.blueprint
            submitted.append(
                SubmittedBlueprint(blueprint.blueprint_id, index, site.growth_kind, int(blueprint.parameter_estimate))
            )
    return submitted


def submit_templates(
    urza: UrzaServiceApi, catalog: TemplateCatalog, template_ids: Sequence[str], sites: Iterable[SeedSite]
) -> list[str]:
    """Submit the templates at every distinct site shape; returns the blueprint ids (idempotent)."""
    submitted = submit_blueprints(urza, catalog, template_ids, sites)
    return list(dict.fromkeys(entry.blueprint_id for entry in submitted))


def pending_blueprints(urza: UrzaServiceApi, blueprint_ids: Sequence[str]) -> list[str]:
    """The blueprints not yet VALIDATED, FAILED or REJECTED."""
    waiting = []
    for blueprint_id in blueprint_ids:
        request = urza_pb2.GetBlueprintRequest(blueprint_id=blueprint_id)
        if urza.get_blueprint(request).blueprint.status not in _SETTLED:
            waiting.append(blueprint_id)
    return waiting


def wait_until_settled(
    urza: UrzaServiceApi, blueprint_ids: Sequence[str], *, timeout: float, poll: float = 0.25
) -> float:
    """Block until every blueprint is settled or `timeout` passes; returns seconds waited."""
    start = time.monotonic()
    waiting = list(blueprint_ids)
    while waiting:
        waiting = pending_blueprints(urza, waiting)
        if not waiting or time.monotonic() - start > timeout:
            break
        time.sleep(poll)
    if waiting:
        logger.warning("asset pipeline: %d blueprint(s) unsettled after %.0f s", len(waiting), timeout)
    return time.monotonic() - start


def prefetch_kernels(
    urza: UrzaServiceApi, cache: KernelCache, sites: Iterable[SeedSite], stop: threading.Event
) -> None:
    """Load the validated kernels that fit `sites` into the cache, once, so grafts hit a hot cache."""
    _load_validated(urza, cache, distinct_sites(sites), stop, loaded=set())


def follow_kernels(
    urza: UrzaServiceApi,
    cache: KernelCache,
    sites: Iterable[SeedSite],
    stop: threading.Event,
    *,
    poll_seconds: float = 1.0,
    device_kind: str = "",
) -> None:
    """Load each kernel that fits `sites` into the cache as soon as it is validated, until `stop` is set.

    A run that does not wait for its kernels germinates with what is validated so far;
    this keeps those kernels loaded before a germination asks for them.
    """
    chosen = distinct_sites(sites)
    loaded: set[str] = set()
    while not stop.is_set():
        _load_validated(urza, cache, chosen, stop, loaded=loaded, device_kind=device_kind)
        stop.wait(poll_seconds)


def _load_validated(
    urza: UrzaServiceApi,
    cache: KernelCache,
    sites: Sequence[SeedSite],
    stop: threading.Event,
    *,
    loaded: set[str],
    device_kind: str = "",
) -> None:
    """Load what fits `sites` and is not in `loaded` (ids are added, failures too: they are not retried)."""
    for site in sites:
        query = kernel_pb2.KernelQuery(
            status=kernel_pb2.KERNEL_STATUS_VALIDATED,
            input_kind=site.input_kind,
            input_shape=blueprint_pb2.TensorShape(dims=site.input_shape),
            growth_kind=site.growth_kind,
            output_shape=blueprint_pb2.TensorShape(dims=site.kernel_output_shape),
            device_kind=device_kind,
        )
        try:
            response = urza.query_kernels(urza_pb2.QueryKernelsRequest(query=query, page_size=1000))
        except EsperError as exc:
            logger.info("prefetch query failed: %s", exc)
            return
        for kernel in best_per_blueprint(list(response.result.kernels)):
            if stop.is_set():
                return
            if kernel.kernel_id in loaded:
                continue
            loaded.add(kernel.kernel_id)
            try:
                cache.load(kernel.kernel_id)
            except EsperError as exc:
                logger.info("prefetch of %s failed: %s", kernel.kernel_id, exc)
