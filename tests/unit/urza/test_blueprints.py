"""Submitting, reading and listing blueprints."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from esper.errors import InvalidArgument, NotFound
from esper.ir import ir_sha256, parameter_count
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.urza.hub import UrzaHub
from tests.support.urza import sample_ir, submit

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
STANDARD = kernel_pb2.COMPILATION_PIPELINE_STANDARD
AGGRESSIVE = kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE


def _jobs(hub: UrzaHub) -> list[kernel_pb2.CompileJob]:
    return list(hub.list_compile_jobs(urza_pb2.ListCompileJobsRequest()).jobs)


def test_create_stores_the_blueprint_and_queues_default_pipelines(hub: UrzaHub) -> None:
    ir = sample_ir()
    response = hub.create_blueprint(
        urza_pb2.CreateBlueprintRequest(
            ir=ir,
            template_id="mlp_residual",
            name="MLP",
            tier=blueprint_pb2.BLUEPRINT_TIER_SAFE,
            tags=["residual"],
        )
    )
    blueprint = response.blueprint
    assert response.created
    assert blueprint.blueprint_id == "bp-" + ir_sha256(ir)[:16]
    assert blueprint.ir_sha256 == ir_sha256(ir)
    assert blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED
    assert blueprint.parameter_estimate == parameter_count(ir)
    assert (blueprint.template_id, blueprint.name, list(blueprint.tags)) == (
        "mlp_residual",
        "MLP",
        ["residual"],
    )
    stored = hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=blueprint.blueprint_id))
    assert stored.blueprint == blueprint
    assert [(job.job_id, job.pipeline, job.status) for job in stored.compile_jobs] == [
        (f"job-{blueprint.blueprint_id}-fast", FAST, kernel_pb2.COMPILE_JOB_STATUS_QUEUED),
        (f"job-{blueprint.blueprint_id}-standard", STANDARD, kernel_pb2.COMPILE_JOB_STATUS_QUEUED),
    ]
    assert all(job.max_attempts == 3 and job.attempts == 0 for job in stored.compile_jobs)
    assert not stored.kernels


def test_same_ir_twice_returns_the_existing_blueprint_and_queues_nothing(hub: UrzaHub) -> None:
    first = hub.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=sample_ir(), name="first"))
    reordered = sample_ir()
    nodes = list(reordered.nodes)
    del reordered.nodes[:]
    reordered.nodes.extend(reversed(nodes))
    second = hub.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=reordered, name="second"))
    assert first.created and not second.created
    assert second.blueprint == first.blueprint
    assert len(_jobs(hub)) == 2


def test_requested_pipelines_replace_the_defaults(hub: UrzaHub) -> None:
    blueprint = submit(hub, pipelines=[AGGRESSIVE])
    assert [(job.job_id, job.pipeline) for job in _jobs(hub)] == [
        (f"job-{blueprint.blueprint_id}-aggressive", AGGRESSIVE)
    ]


def _unknown_op(ir: blueprint_pb2.BlueprintIR) -> None:
    ir.nodes[1].op_type = 99  # type: ignore[assignment]


def _shape_mismatch(ir: blueprint_pb2.BlueprintIR) -> None:
    ir.nodes[2].output_shape.dims[0] = 17


def _cycle(ir: blueprint_pb2.BlueprintIR) -> None:
    ir.edges[0].source_node_id = "add_0"


def _absurd_size(ir: blueprint_pb2.BlueprintIR) -> None:
    ir.nodes[1].attributes["out_features"].int_value = 10**9


@pytest.mark.parametrize(
    ("corrupt", "field"),
    [
        (_unknown_op, "ir.nodes[1].op_type"),
        (_shape_mismatch, "ir.nodes[2].output_shape"),
        (_cycle, "ir.nodes[1]"),
        (_absurd_size, "ir.nodes[1].attributes.out_features"),
    ],
    ids=["unknown-op", "shape-mismatch", "cycle", "absurd-size"],
)
def test_malformed_ir_is_refused_naming_the_node_and_nothing_is_stored(
    hub: UrzaHub, corrupt: Callable[[blueprint_pb2.BlueprintIR], None], field: str
) -> None:
    ir = sample_ir()
    corrupt(ir)
    with pytest.raises(InvalidArgument) as caught:
        hub.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=ir))
    assert caught.value.reason == "INVALID_IR"
    assert [violation.field for violation in caught.value.violations] == [field]
    assert not hub.list_blueprints(urza_pb2.ListBlueprintsRequest()).blueprints
    assert not _jobs(hub)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({}, "ir"),
        ({"template_id": "Not A Template"}, "template_id"),
        ({"pipelines": [FAST, FAST]}, "pipelines[1]"),
        ({"pipelines": [kernel_pb2.COMPILATION_PIPELINE_UNSPECIFIED]}, "pipelines[0]"),
        ({"tags": ["ok", "not ok"]}, "tags[1]"),
    ],
)
def test_bad_create_request_names_the_field(hub: UrzaHub, request_fields: dict[str, object], field: str) -> None:
    request = urza_pb2.CreateBlueprintRequest(**request_fields)  # type: ignore[arg-type]
    if field != "ir":
        request.ir.CopyFrom(sample_ir())
    with pytest.raises(InvalidArgument) as caught:
        hub.create_blueprint(request)
    assert caught.value.reason == "INVALID_FIELD"
    assert caught.value.violations[0].field == field


def test_unknown_blueprint_is_not_found(hub: UrzaHub) -> None:
    with pytest.raises(NotFound) as caught:
        hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id="bp-0000000000000000"))
    assert caught.value.reason == "BLUEPRINT_NOT_FOUND"


def test_list_blueprints_pages_newest_first_without_duplicates(hub: UrzaHub) -> None:
    created = [submit(hub, sample_ir(seed=seed)).blueprint_id for seed in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page = hub.list_blueprints(urza_pb2.ListBlueprintsRequest(page_size=3, page_token=token))
        assert len(page.blueprints) <= 3
        seen.extend(blueprint.blueprint_id for blueprint in page.blueprints)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(created))


def test_list_blueprints_filters_by_status(hub: UrzaHub) -> None:
    submit(hub, sample_ir(seed=1))
    submitted = hub.list_blueprints(
        urza_pb2.ListBlueprintsRequest(status=blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED)
    ).blueprints
    failed = hub.list_blueprints(urza_pb2.ListBlueprintsRequest(status=blueprint_pb2.BLUEPRINT_STATUS_FAILED))
    assert len(submitted) == 1
    assert not failed.blueprints


def test_a_page_token_only_works_for_its_own_filter(hub: UrzaHub) -> None:
    for seed in range(3):
        submit(hub, sample_ir(seed=seed))
    token = hub.list_blueprints(urza_pb2.ListBlueprintsRequest(page_size=1)).next_page_token
    assert token
    with pytest.raises(InvalidArgument) as caught:
        hub.list_blueprints(
            urza_pb2.ListBlueprintsRequest(
                page_size=1, page_token=token, status=blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED
            )
        )
    assert caught.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument) as caught:
        hub.list_blueprints(urza_pb2.ListBlueprintsRequest(page_size=1001))
    assert caught.value.violations[0].field == "page_size"
