"""KarnService over a real in-process server, through the KarnClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf.message import Message

from esper.clients import KarnClient
from esper.clients.base import ClientConfig
from esper.errors import InvalidArgument, NotFound
from esper.karn.catalog import TemplateCatalog
from esper.karn.config import KarnConfig
from esper.karn.service import KarnService
from esper.leyline.v1 import blueprint_pb2, control_pb2, karn_pb2
from esper.leyline.v1.services import KARN_SERVICE
from esper.mesh.hosting import host
from tests.support.servers import ServerFactory

SAFE = blueprint_pb2.BLUEPRINT_TIER_SAFE
EXPERIMENTAL = blueprint_pb2.BLUEPRINT_TIER_EXPERIMENTAL
ADVERSARIAL = blueprint_pb2.BLUEPRINT_TIER_ADVERSARIAL
FEATURES = blueprint_pb2.INPUT_KIND_FEATURES
IMAGE = blueprint_pb2.INPUT_KIND_IMAGE
WIDTH = blueprint_pb2.GROWTH_KIND_WIDTH


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.default()


@pytest.fixture
def karn(catalog: TemplateCatalog) -> KarnService:
    return KarnService(catalog, KarnConfig(max_field_reports=3))


@pytest.fixture
def client(grpc_server: ServerFactory, karn: KarnService) -> Iterator[KarnClient]:
    server = grpc_server([host(KARN_SERVICE.bind(karn))], service_name="karn")
    with KarnClient(ClientConfig(address=server.address, deadline_seconds=30.0)) as client:
        yield client


def _list_all(client: KarnClient, page_size: int, **filters: object) -> list[blueprint_pb2.BlueprintTemplate]:
    templates: list[blueprint_pb2.BlueprintTemplate] = []
    token = ""
    while True:
        page = client.list_templates(karn_pb2.ListTemplatesRequest(page_size=page_size, page_token=token, **filters))
        assert len(page.templates) <= page_size
        templates.extend(page.templates)
        assert page.total_size >= len(templates)
        token = page.next_page_token
        if not token:
            assert page.total_size == len(templates)
            return templates


def test_paging_returns_every_template_exactly_once(client: KarnClient, catalog: TemplateCatalog) -> None:
    ids = [template.template_id for template in _list_all(client, page_size=7)]
    assert len(ids) >= 50
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids) == catalog.template_ids()


def test_unset_page_size_means_one_hundred(client: KarnClient, catalog: TemplateCatalog) -> None:
    page = client.list_templates(karn_pb2.ListTemplatesRequest())
    assert len(page.templates) == min(100, len(catalog.template_ids()))


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({"tier": ADVERSARIAL}, lambda t: t.tier == ADVERSARIAL),
        ({"tier": SAFE}, lambda t: t.tier == SAFE),
        ({"tag": "attention"}, lambda t: "attention" in t.tags),
        ({"input_kind": IMAGE}, lambda t: t.input_kind == IMAGE),
        (
            {"input_kind": FEATURES, "tier": EXPERIMENTAL},
            lambda t: t.input_kind == FEATURES and t.tier == EXPERIMENTAL,
        ),
    ],
)
def test_filters_select_exactly_the_matching_templates(
    client: KarnClient, catalog: TemplateCatalog, filters: dict[str, object], matches: object
) -> None:
    listed = {t.template_id for t in _list_all(client, page_size=4, **filters)}
    expected = {t.template_id for t in catalog.list_templates() if matches(t)}
    assert listed == expected
    assert listed  # the filter is not vacuous


def test_a_token_only_pages_its_own_filter(client: KarnClient) -> None:
    first = client.list_templates(karn_pb2.ListTemplatesRequest(page_size=2, tier=SAFE))
    assert first.next_page_token
    with pytest.raises(InvalidArgument) as raised:
        client.list_templates(
            karn_pb2.ListTemplatesRequest(page_size=2, tier=EXPERIMENTAL, page_token=first.next_page_token)
        )
    assert raised.value.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in raised.value.violations] == ["page_token"]


def test_get_returns_the_listed_template(client: KarnClient) -> None:
    listed = client.list_templates(karn_pb2.ListTemplatesRequest(page_size=3, tag="residual")).templates[2]
    got = client.get_template(karn_pb2.GetTemplateRequest(template_id=listed.template_id)).template
    assert got == listed
    assert got.parameter_estimate > 0 and got.ir.nodes


def test_unknown_template_is_not_found(client: KarnClient) -> None:
    with pytest.raises(NotFound) as raised:
        client.get_template(karn_pb2.GetTemplateRequest(template_id="no_such_template"))
    assert raised.value.reason == "TEMPLATE_NOT_FOUND"


def test_query_fits_the_site_and_budget(client: KarnClient) -> None:
    request = karn_pb2.QueryTemplatesRequest(
        input_kind=FEATURES,
        input_shape=blueprint_pb2.TensorShape(dims=[128]),
        tiers=[SAFE, EXPERIMENTAL],
        max_parameter_estimate=40_000,
        limit=6,
    )
    found = client.query_templates(request).templates
    assert 0 < len(found) <= 6
    assert all(t.input_kind == FEATURES and t.tier in (SAFE, EXPERIMENTAL) for t in found)
    assert all(list(t.ir.input_shape.dims) == [128] for t in found)
    assert all(t.parameter_estimate <= 40_000 for t in found)
    estimates = [t.parameter_estimate for t in found]
    assert estimates == sorted(estimates)


def test_width_query_builds_width_templates_at_both_shapes(client: KarnClient) -> None:
    request = karn_pb2.QueryTemplatesRequest(
        input_kind=IMAGE,
        input_shape=_shape(1, 8, 8),
        growth_kind=WIDTH,
        output_shape=_shape(10),
    )
    found = client.query_templates(request).templates
    assert [t.template_id for t in found][:2] == ["widen_conv3_k1", "widen_conv3_k2"]
    assert all(t.growth_kind == WIDTH and list(t.ir.output_shape.dims) == [10] for t in found)
    widths = client.list_templates(karn_pb2.ListTemplatesRequest(growth_kind=WIDTH, page_size=100)).templates
    assert {t.template_id for t in widths} == {t.template_id for t in found} | {
        t.template_id.replace("conv3_", "") for t in found
    }


def test_query_without_tiers_means_safe_only_and_tags_all_must_match(client: KarnClient) -> None:
    request = karn_pb2.QueryTemplatesRequest(tags_all=["attention"], limit=1000)
    found = client.query_templates(request).templates
    assert found
    assert all(t.tier == SAFE and "attention" in t.tags for t in found)


def _report(report_id: str) -> control_pb2.FieldReport:
    return control_pb2.FieldReport(report_id=report_id, run_id="run", pre_metric=0.5, post_metric=0.75)


def test_field_reports_are_deduplicated_by_id(client: KarnClient, karn: KarnService) -> None:
    first = client.submit_field_reports(
        karn_pb2.SubmitFieldReportsRequest(reports=[_report("a"), _report("b"), _report("a")])
    )
    assert (first.accepted_count, first.duplicate_count) == (2, 1)
    again = client.submit_field_reports(karn_pb2.SubmitFieldReportsRequest(reports=[_report("b"), _report("c")]))
    assert (again.accepted_count, again.duplicate_count) == (1, 1)
    assert [r.report_id for r in karn.field_reports()] == ["a", "b", "c"]


def test_field_report_log_is_bounded_oldest_first(client: KarnClient, karn: KarnService) -> None:
    reports = [_report(f"r{i}") for i in range(5)]
    response = client.submit_field_reports(karn_pb2.SubmitFieldReportsRequest(reports=reports))
    assert response.accepted_count == 5
    assert [r.report_id for r in karn.field_reports()] == ["r2", "r3", "r4"]


def _shape(*dims: int) -> blueprint_pb2.TensorShape:
    return blueprint_pb2.TensorShape(dims=list(dims))


_List, _Get = karn_pb2.ListTemplatesRequest, karn_pb2.GetTemplateRequest
_Query, _Submit = karn_pb2.QueryTemplatesRequest, karn_pb2.SubmitFieldReportsRequest
_FIELD, _TOKEN = "INVALID_FIELD", "INVALID_PAGE_TOKEN"

BAD_REQUESTS: list[tuple[str, Message, str, str]] = [
    ("list_templates", _List(page_size=-1), "page_size", _FIELD),
    ("list_templates", _List(page_size=1001), "page_size", _FIELD),
    ("list_templates", _List(page_token="garbage!"), "page_token", _TOKEN),
    ("list_templates", _List(page_token="QUJD"), "page_token", _TOKEN),
    ("list_templates", _List(tier=9), "tier", _FIELD),
    ("list_templates", _List(input_kind=7), "input_kind", _FIELD),
    ("list_templates", _List(tag="t" * 65), "tag", _FIELD),
    ("get_template", _Get(), "template_id", _FIELD),
    ("get_template", _Get(template_id="x" * 65), "template_id", _FIELD),
    ("query_templates", _Query(limit=-5), "limit", _FIELD),
    ("query_templates", _Query(limit=1001), "limit", _FIELD),
    ("query_templates", _Query(tiers=[SAFE, 7]), "tiers[1]", _FIELD),
    ("query_templates", _Query(tiers=[0]), "tiers[0]", _FIELD),
    ("query_templates", _Query(input_kind=42), "input_kind", _FIELD),
    ("query_templates", _Query(input_shape=_shape(8, 0)), "input_shape.dims[1]", _FIELD),
    ("query_templates", _Query(input_shape=_shape(1, 2, 3, 4)), "input_shape.dims", _FIELD),
    ("query_templates", _Query(tags_all=["ok", ""]), "tags_all[1]", _FIELD),
    ("query_templates", _Query(growth_kind=9), "growth_kind", _FIELD),
    ("query_templates", _Query(growth_kind=WIDTH, input_shape=_shape(6)), "output_shape", _FIELD),
    ("query_templates", _Query(output_shape=_shape(0)), "output_shape.dims[0]", _FIELD),
    ("list_templates", _List(growth_kind=9), "growth_kind", _FIELD),
    (
        "submit_field_reports",
        _Submit(reports=[_report("ok"), control_pb2.FieldReport()]),
        "reports[1].report_id",
        _FIELD,
    ),
    (
        "submit_field_reports",
        _Submit(reports=[control_pb2.FieldReport(report_id="x", post_metric=1.5)]),
        "reports[0].post_metric",
        _FIELD,
    ),
]


@pytest.mark.parametrize(
    ("rpc", "request_message", "field", "reason"), BAD_REQUESTS, ids=[f"{b[0]}-{b[2]}" for b in BAD_REQUESTS]
)
def test_bad_input_is_invalid_argument_naming_the_field_and_the_server_keeps_serving(
    client: KarnClient, karn: KarnService, rpc: str, request_message: Message, field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        getattr(client, rpc)(request_message)
    assert raised.value.reason == reason
    assert [v.field for v in raised.value.violations] == [field]
    assert karn.field_reports() == []  # a refused request records nothing
    assert client.list_templates(karn_pb2.ListTemplatesRequest(page_size=1)).templates
