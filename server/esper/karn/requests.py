"""Checks of every Karn request, in one place.

Each `check_<rpc>` raises InvalidArgument naming the offending field, and returns
the request's effective values (defaults applied, page token decoded) so callers
never re-derive them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from esper import checks, ids
from esper.errors import InvalidArgument
from esper.ir.limits import MAX_DIM, MIN_DIM
from esper.karn.config import KarnConfig
from esper.leyline.v1 import blueprint_pb2, control_pb2, karn_pb2, lifecycle_pb2
from esper.paging import decode_page_token, validate_page_size

MAX_TAG_LENGTH = 64
MAX_SHAPE_RANK = 3

_TIERS = frozenset(blueprint_pb2.BlueprintTier.values())
_INPUT_KINDS = frozenset(blueprint_pb2.InputKind.values())
_GROWTH_KINDS = frozenset(blueprint_pb2.GrowthKind.values())


@dataclass(frozen=True)
class TemplatePage:
    """Where a ListTemplates page starts and how long it is, for one filter."""

    offset: int
    page_size: int
    fingerprint: str


@dataclass(frozen=True)
class TemplateQuery:
    """A QueryTemplates request with its defaults applied. Empty/zero fields do not filter."""

    input_kind: int
    input_shape: tuple[int, ...]
    tiers: tuple[int, ...]
    tags_all: tuple[str, ...]
    max_parameter_estimate: int
    limit: int
    growth_kind: int = blueprint_pb2.GROWTH_KIND_UNSPECIFIED
    output_shape: tuple[int, ...] = ()


def list_filter_fingerprint(request: karn_pb2.ListTemplatesRequest) -> str:
    """Identity of a listing's filter; page tokens are only good for the same filter."""
    return json.dumps(["karn.ListTemplates", request.tier, request.tag, request.input_kind, request.growth_kind])


def check_list_templates(request: karn_pb2.ListTemplatesRequest, config: KarnConfig | None = None) -> TemplatePage:
    config = config or KarnConfig()
    page_size = validate_page_size(request.page_size, default=config.default_page_size, maximum=config.max_page_size)
    _check_enum(request.tier, _TIERS, "tier", "a BlueprintTier")
    _check_enum(request.input_kind, _INPUT_KINDS, "input_kind", "an InputKind")
    _check_enum(request.growth_kind, _GROWTH_KINDS, "growth_kind", "a GrowthKind")
    _check_tag(request.tag, "tag")
    fingerprint = list_filter_fingerprint(request)
    return TemplatePage(decode_page_token(request.page_token, fingerprint), page_size, fingerprint)


def check_get_template(request: karn_pb2.GetTemplateRequest) -> str:
    return ids.TEMPLATE.check("template_id", request.template_id)


def check_query_templates(request: karn_pb2.QueryTemplatesRequest, config: KarnConfig | None = None) -> TemplateQuery:
    config = config or KarnConfig()
    limit = validate_page_size(
        request.limit, field="limit", default=config.default_query_limit, maximum=config.max_query_limit
    )
    _check_enum(request.input_kind, _INPUT_KINDS, "input_kind", "an InputKind")
    _check_enum(request.growth_kind, _GROWTH_KINDS, "growth_kind", "a GrowthKind")
    dims = _check_shape(tuple(request.input_shape.dims), "input_shape")
    output = _check_shape(tuple(request.output_shape.dims), "output_shape")
    width = request.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH
    if width and dims and not output:
        raise InvalidArgument.for_field("output_shape", "is required for a width site with an input_shape")
    for i, tier in enumerate(request.tiers):
        if tier == blueprint_pb2.BLUEPRINT_TIER_UNSPECIFIED:
            raise InvalidArgument.for_field(f"tiers[{i}]", "must name a tier, not BLUEPRINT_TIER_UNSPECIFIED")
        _check_enum(tier, _TIERS, f"tiers[{i}]", "a BlueprintTier")
    for i, tag in enumerate(request.tags_all):
        if not tag:
            raise InvalidArgument.for_field(f"tags_all[{i}]", "must not be empty")
        _check_tag(tag, f"tags_all[{i}]")
    tiers = tuple(request.tiers) or (blueprint_pb2.BLUEPRINT_TIER_SAFE,)
    return TemplateQuery(
        input_kind=request.input_kind,
        input_shape=dims,
        tiers=tiers,
        tags_all=tuple(request.tags_all),
        max_parameter_estimate=request.max_parameter_estimate,
        limit=limit,
        growth_kind=request.growth_kind,
        output_shape=output if width else (),
    )


def check_submit_field_reports(request: karn_pb2.SubmitFieldReportsRequest, config: KarnConfig | None = None) -> None:
    config = config or KarnConfig()
    if len(request.reports) > config.max_reports_per_request:
        raise InvalidArgument.for_field(
            "reports", f"holds {len(request.reports)}; at most {config.max_reports_per_request} per request"
        )
    for i, report in enumerate(request.reports):
        if not report.report_id:
            raise InvalidArgument.for_field(f"reports[{i}].report_id", "is required")
        _check_report_metrics(report, f"reports[{i}]")


def _check_shape(dims: tuple[int, ...], field: str) -> tuple[int, ...]:
    if len(dims) > MAX_SHAPE_RANK:
        raise InvalidArgument.for_field(
            f"{field}.dims", f"has rank {len(dims)}; a site's shape has rank 1 to {MAX_SHAPE_RANK}"
        )
    for i, dim in enumerate(dims):
        checks.in_range(f"{field}.dims[{i}]", dim, MIN_DIM, MAX_DIM)
    return dims


def _check_enum(value: int, known: frozenset[int], field: str, what: str) -> None:
    if value not in known:
        raise InvalidArgument.for_field(field, f"{value} is not {what}")


def _check_tag(tag: str, field: str) -> None:
    if len(tag) > MAX_TAG_LENGTH:
        raise InvalidArgument.for_field(field, f"is longer than {MAX_TAG_LENGTH} characters")


def _check_report_metrics(report: control_pb2.FieldReport, path: str) -> None:
    """Accuracies in [0, 1]; another metric (a report naming its direction) only finite."""
    accuracy = report.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
    for name in ("pre_metric", "post_metric"):
        if accuracy:
            checks.in_range(f"{path}.{name}", getattr(report, name), 0.0, 1.0)
        else:
            checks.finite(f"{path}.{name}", getattr(report, name))
