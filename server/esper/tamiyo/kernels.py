"""Choosing a validated kernel for a seed: a tag-based query to Urza, then a deterministic ranking.

A blueprint compiled by several pipelines counts once, by its best validated kernel:
STANDARD (lowered and checked against eager) over FAST, and AGGRESSIVE (frozen: a
seed cannot train it) last. FAST kernels are validated first, so an early
germination takes a blueprint's FAST kernel and a later one its STANDARD kernel.

Candidates are then ranked by, in order: the blueprint's outcome score in this run
(fossilized +1, culled or rolled back -1, so proven blueprints come first and ones
culled here last); the capacity the kernel adds, as the binary order of magnitude
of its parameter count (more first: growth is there to add capacity, and the query
already caps parameters at the budget); the mean latency in the kernel's
validation report (lower first; no report ranks last); then kernel id, so equal
inputs always give the same choice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from esper.errors import EsperError
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, telemetry_pb2, urza_pb2

logger = logging.getLogger(__name__)


class KernelDirectory(Protocol):
    """Where validated kernels are found: Urza's QueryKernels, from the in-process hub or a client.

    The one Urza rpc Tamiyo uses, so the controller depends on neither implementation.
    """

    def query_kernels(self, request: urza_pb2.QueryKernelsRequest, /) -> urza_pb2.QueryKernelsResponse:
        """Kernels matching a KernelQuery, newest first, paged."""
        ...


@dataclass(frozen=True)
class KernelChoice:
    """The kernel chosen for a seed and why."""

    kernel: kernel_pb2.KernelArtifact
    tags: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class KernelSearch:
    """Where and how to look: the tag sets to try in order and the parameter budget (0 = none)."""

    directory: KernelDirectory
    tag_ladder: tuple[tuple[str, ...], ...]
    max_parameter_count: int
    page_size: int
    max_candidates: int
    # Rank by size before the blueprint's run score (culled blueprints still last): a width
    # seed's kernel is sized to the step the model should take, whichever blueprint worked before.
    by_size: bool = False
    # Only kernels built for the run's kind of device ("cpu", "cuda"); "" takes any.
    device_kind: str = ""


class KernelQueryFailed(Exception):
    """Urza could not be asked; the message says why."""


class RecentKernels:
    """A KernelDirectory that remembers each query's answer for `ttl_seconds`.

    Tamiyo asks Urza the same questions at every boundary (one query per seed site, and
    a learned policy or a recorded transition asks at every open boundary); the answer
    changes only when kernels are validated, so a few seconds of staleness cost nothing
    and save a query per site per boundary.
    """

    def __init__(
        self, directory: KernelDirectory, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._directory = directory
        self._ttl = ttl_seconds
        self._clock = clock
        self._answers: dict[bytes, tuple[float, urza_pb2.QueryKernelsResponse]] = {}
        self._lock = threading.Lock()

    def query_kernels(self, request: urza_pb2.QueryKernelsRequest) -> urza_pb2.QueryKernelsResponse:
        key = request.SerializeToString(deterministic=True)
        now = self._clock()
        with self._lock:
            found = self._answers.get(key)
            if found is not None and now - found[0] < self._ttl:
                return found[1]
        answer = self._directory.query_kernels(request)
        with self._lock:
            if len(self._answers) > 1024:
                self._answers.clear()
            self._answers[key] = (now, answer)
        return answer


def site_label(descriptor: telemetry_pb2.SeedDescriptor) -> str:
    """E.g. "FEATURES [64]", or "width FEATURES [6] -> [4]", for reasons."""
    kind = blueprint_pb2.InputKind.Name(descriptor.input_kind).removeprefix("INPUT_KIND_")
    if is_width(descriptor):
        return f"width {kind} {list(descriptor.input_shape.dims)} -> {list(descriptor.output_shape.dims)}"
    return f"{kind} {list(descriptor.input_shape.dims)}"


def is_width(descriptor: telemetry_pb2.SeedDescriptor) -> bool:
    return descriptor.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH


def kernel_output_shape(descriptor: telemetry_pb2.SeedDescriptor) -> blueprint_pb2.TensorShape:
    """What the seed's kernels must produce: a width seed's output shape, a depth seed's own shape."""
    return descriptor.output_shape if is_width(descriptor) else descriptor.input_shape


def choose_kernel(
    search: KernelSearch,
    descriptor: telemetry_pb2.SeedDescriptor,
    blueprint_scores: Mapping[str, int],
) -> KernelChoice | None:
    """The best validated kernel for the seed's site, or None when no kernel fits.

    Tries each tag set of the ladder in turn (the last is usually no tags at all)
    and ranks the first non-empty set of candidates. Raises KernelQueryFailed when
    the directory fails.
    """
    for tags in search.tag_ladder:
        candidates = best_per_blueprint(_query(search, descriptor, tags))
        if candidates:
            ranked = sorted(candidates, key=lambda kernel: _rank(kernel, blueprint_scores, by_size=search.by_size))
            best = ranked[0]
            return KernelChoice(kernel=best, tags=tags, reason=_reason(best, len(ranked), tags, blueprint_scores))
    return None


def validated_kernels(
    search: KernelSearch, descriptor: telemetry_pb2.SeedDescriptor
) -> list[kernel_pb2.KernelArtifact]:
    """Every validated kernel for the seed's site within the search's parameter budget, by kernel id.

    Raises KernelQueryFailed when the directory fails.
    """
    return sorted(_query(search, descriptor, ()), key=lambda kernel: kernel.kernel_id)


def tag_ladder(*tag_sets: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Distinct tag sets in the order given, always ending with no tags."""
    ladder: list[tuple[str, ...]] = []
    for tags in [*tag_sets, ()]:
        normalized = tuple(dict.fromkeys(tags))
        if normalized not in ladder:
            ladder.append(normalized)
    return tuple(ladder)


def _query(
    search: KernelSearch, descriptor: telemetry_pb2.SeedDescriptor, tags: tuple[str, ...]
) -> list[kernel_pb2.KernelArtifact]:
    query = kernel_pb2.KernelQuery(
        status=kernel_pb2.KERNEL_STATUS_VALIDATED,
        tags_all=tags,
        input_kind=descriptor.input_kind,
        max_parameter_count=search.max_parameter_count,
        growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH if is_width(descriptor) else blueprint_pb2.GROWTH_KIND_DEPTH,
        device_kind=search.device_kind,
    )
    query.input_shape.CopyFrom(descriptor.input_shape)
    query.output_shape.CopyFrom(kernel_output_shape(descriptor))
    found: list[kernel_pb2.KernelArtifact] = []
    page_token = ""
    while len(found) < search.max_candidates:
        request = urza_pb2.QueryKernelsRequest(query=query, page_size=search.page_size, page_token=page_token)
        try:
            response = search.directory.query_kernels(request)
        except EsperError as exc:
            raise KernelQueryFailed(f"{exc.code} ({exc.reason}): {exc.message}") from exc
        found.extend(kernel for kernel in response.result.kernels if _fits(kernel, query))
        page_token = response.result.next_page_token
        if not page_token:
            break
    return found[: search.max_candidates]


# Lower is better: which of a blueprint's kernels a seed gets.
_PIPELINE_PREFERENCE = {
    kernel_pb2.COMPILATION_PIPELINE_STANDARD: 0,
    kernel_pb2.COMPILATION_PIPELINE_FAST: 1,
    kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE: 2,
}


def best_per_blueprint(kernels: Sequence[kernel_pb2.KernelArtifact]) -> list[kernel_pb2.KernelArtifact]:
    """Each blueprint's best kernel by pipeline (see the module's docstring), in first-seen order."""
    best: dict[str, kernel_pb2.KernelArtifact] = {}
    for kernel in kernels:
        key = kernel.blueprint_id or kernel.kernel_id
        held = best.get(key)
        if held is None or _pipeline_rank(kernel) < _pipeline_rank(held):
            best[key] = kernel
    return list(best.values())


def _pipeline_rank(kernel: kernel_pb2.KernelArtifact) -> tuple[int, str]:
    return (_PIPELINE_PREFERENCE.get(kernel.pipeline, len(_PIPELINE_PREFERENCE)), kernel.kernel_id)


def _fits(kernel: kernel_pb2.KernelArtifact, query: kernel_pb2.KernelQuery) -> bool:
    """The query's filter again, so a directory that ignores part of it cannot hand over a misfit."""
    kernel_output = kernel.output_shape.dims or kernel.input_shape.dims
    return (
        kernel.status == kernel_pb2.KERNEL_STATUS_VALIDATED
        and kernel.input_kind == query.input_kind
        and list(kernel.input_shape.dims) == list(query.input_shape.dims)
        and (kernel.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH) == query.growth_kind
        and list(kernel_output) == list(query.output_shape.dims)
        and set(query.tags_all) <= set(kernel.tags)
        and (query.max_parameter_count == 0 or kernel.parameter_count <= query.max_parameter_count)
        and (not query.device_kind or kernel.hardware_target.startswith(f"{query.device_kind}_"))
    )


def _latency(kernel: kernel_pb2.KernelArtifact) -> float:
    if kernel.HasField("validation_report") and kernel.validation_report.latency_ms_mean > 0:
        return kernel.validation_report.latency_ms_mean
    return math.inf


def _capacity(kernel: kernel_pb2.KernelArtifact) -> int:
    """Binary order of magnitude of the parameters added; kernels within 2x count as equal."""
    return int(math.log2(1 + kernel.parameter_count))


def _rank(
    kernel: kernel_pb2.KernelArtifact, scores: Mapping[str, int], *, by_size: bool = False
) -> tuple[int, int, float, str]:
    score = scores.get(kernel.blueprint_id, 0)
    if by_size:
        return (int(score < 0), -kernel.parameter_count, _latency(kernel), kernel.kernel_id)
    return (-score, -_capacity(kernel), _latency(kernel), kernel.kernel_id)


def _reason(
    kernel: kernel_pb2.KernelArtifact, candidates: int, tags: tuple[str, ...], scores: Mapping[str, int]
) -> str:
    latency = _latency(kernel)
    latency_text = "no latency report" if math.isinf(latency) else f"latency {latency:.3f} ms"
    tag_text = f"tags [{', '.join(tags)}]" if tags else "no tag filter"
    return (
        f"kernel {kernel.kernel_id} (blueprint {kernel.blueprint_id}, run score "
        f"{scores.get(kernel.blueprint_id, 0):+d}, {latency_text}, {kernel.parameter_count} params), "
        f"best of {candidates} validated with {tag_text}"
    )
