"""Kernel queries: every KernelQuery filter, newest first, paging."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from esper.errors import InvalidArgument, NotFound
from esper.ir import IRBuilder
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.urza.hub import UrzaHub
from tests.support.urza import claim, compile_all, complete, sample_ir, submit, validate

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
STANDARD = kernel_pb2.COMPILATION_PIPELINE_STANDARD
K = kernel_pb2.KernelStatus


def image_ir() -> blueprint_pb2.BlueprintIR:
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [4, 8, 8])
    conv = builder.conv2d(builder.input, 4, 3)
    return builder.build(builder.add_(builder.input, conv))


@dataclass
class Library:
    a_fast: str  # features [16], template mlp_a, VALIDATED, tags high_speed + low_memory
    a_standard: str  # REJECTED
    c_fast: str  # image [4, 8, 8], VALIDATED, tag high_speed
    b_fast: str  # features [32], template mlp_b, COMPILED, the most parameters
    a_blueprint: str
    a_parameters: int


@pytest.fixture
def library(hub: UrzaHub) -> Library:
    a = submit(hub, sample_ir(16), template_id="mlp_a")
    a_fast, a_standard = compile_all(hub)
    validate(hub, tags=("high_speed", "low_memory"))
    validate(hub, passed=False, reason="too slow")
    submit(hub, image_ir(), template_id="conv_c", pipelines=[FAST])
    (c_fast,) = compile_all(hub)
    validate(hub, tags=("high_speed",))
    submit(hub, sample_ir(32), template_id="mlp_b", pipelines=[FAST])
    (b_fast,) = compile_all(hub)
    return Library(
        a_fast.kernel_id,
        a_standard.kernel_id,
        c_fast.kernel_id,
        b_fast.kernel_id,
        a.blueprint_id,
        a_fast.parameter_count,
    )


def _ids(hub: UrzaHub, **query: object) -> list[str]:
    result = hub.query_kernels(urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(**query))).result  # type: ignore[arg-type]
    assert result.total_size == len(result.kernels)
    return [kernel.kernel_id for kernel in result.kernels]


def test_no_filter_returns_every_kernel_but_rejected_ones_newest_first(hub: UrzaHub, library: Library) -> None:
    assert _ids(hub) == [library.b_fast, library.c_fast, library.a_fast]


def test_filter_by_status(hub: UrzaHub, library: Library) -> None:
    assert _ids(hub, status=K.KERNEL_STATUS_VALIDATED) == [library.c_fast, library.a_fast]
    assert _ids(hub, status=K.KERNEL_STATUS_REJECTED) == [library.a_standard]
    assert _ids(hub, status=K.KERNEL_STATUS_COMPILED) == [library.b_fast]


def test_every_tag_must_match(hub: UrzaHub, library: Library) -> None:
    assert _ids(hub, tags_all=["high_speed"]) == [library.c_fast, library.a_fast]
    assert _ids(hub, tags_all=["high_speed", "low_memory"]) == [library.a_fast]
    assert _ids(hub, tags_all=["high_speed", "unknown_tag"]) == []


def test_filter_by_blueprint_pipeline_and_template(hub: UrzaHub, library: Library) -> None:
    assert _ids(hub, blueprint_id=library.a_blueprint) == [library.a_fast]
    assert _ids(hub, pipeline=STANDARD, status=K.KERNEL_STATUS_REJECTED) == [library.a_standard]
    assert _ids(hub, pipeline=STANDARD) == []
    assert _ids(hub, template_id="mlp_b") == [library.b_fast]


def test_filter_by_input_kind_and_exact_shape(hub: UrzaHub, library: Library) -> None:
    assert _ids(hub, input_kind=blueprint_pb2.INPUT_KIND_IMAGE) == [library.c_fast]
    assert _ids(hub, input_shape=blueprint_pb2.TensorShape(dims=[32])) == [library.b_fast]
    assert _ids(hub, input_shape=blueprint_pb2.TensorShape(dims=[4, 8, 8])) == [library.c_fast]
    assert _ids(hub, input_shape=blueprint_pb2.TensorShape(dims=[4, 8])) == []


def width_ir() -> blueprint_pb2.BlueprintIR:
    """New units for a Linear layer reading [16] features, adding into a [10] output."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [16], growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH)
    hidden = builder.activation(blueprint_pb2.OP_TYPE_RELU, builder.linear(builder.input, 2))
    return builder.build(builder.linear(hidden, 10, bias=False))


def test_filter_by_growth_kind_and_output_shape(hub: UrzaHub, library: Library) -> None:
    submit(hub, width_ir(), template_id="widen_k2", pipelines=[FAST])
    (width,) = compile_all(hub)
    assert (width.growth_kind, list(width.output_shape.dims)) == (blueprint_pb2.GROWTH_KIND_WIDTH, [10])
    depth = blueprint_pb2.GROWTH_KIND_DEPTH
    same_input = blueprint_pb2.TensorShape(dims=[16])
    assert _ids(hub, input_shape=same_input) == [width.kernel_id, library.a_fast]
    assert _ids(hub, input_shape=same_input, growth_kind=depth) == [library.a_fast]
    assert _ids(hub, input_shape=same_input, output_shape=same_input) == [library.a_fast]
    assert _ids(hub, growth_kind=blueprint_pb2.GROWTH_KIND_WIDTH) == [width.kernel_id]
    assert _ids(hub, output_shape=blueprint_pb2.TensorShape(dims=[10])) == [width.kernel_id]


def test_filter_by_parameter_budget(hub: UrzaHub, library: Library) -> None:
    assert _ids(hub, max_parameter_count=library.a_parameters) == [library.c_fast, library.a_fast]


def test_tamiyos_query_combines_filters(hub: UrzaHub, library: Library) -> None:
    ids = _ids(
        hub,
        status=K.KERNEL_STATUS_VALIDATED,
        input_kind=blueprint_pb2.INPUT_KIND_FEATURES,
        input_shape=blueprint_pb2.TensorShape(dims=[16]),
        tags_all=["low_memory"],
    )
    assert ids == [library.a_fast]


def test_paging_visits_every_match_once(hub: UrzaHub) -> None:
    for seed in range(10):
        submit(hub, sample_ir(seed=seed), pipelines=[FAST])
    expected = [kernel.kernel_id for kernel in compile_all(hub)]
    seen: list[str] = []
    token = ""
    while True:
        result = hub.query_kernels(urza_pb2.QueryKernelsRequest(page_size=3, page_token=token)).result
        assert result.total_size == 10
        assert len(result.kernels) <= 3
        seen.extend(kernel.kernel_id for kernel in result.kernels)
        if not (token := result.next_page_token):
            break
    assert seen == list(reversed(expected))


def test_a_token_from_another_query_is_refused(hub: UrzaHub) -> None:
    for seed in range(3):
        submit(hub, sample_ir(seed=seed), pipelines=[FAST])
    compile_all(hub)
    token = hub.query_kernels(urza_pb2.QueryKernelsRequest(page_size=1)).result.next_page_token
    request = urza_pb2.QueryKernelsRequest(
        page_size=1, page_token=token, query=kernel_pb2.KernelQuery(status=K.KERNEL_STATUS_COMPILED)
    )
    with pytest.raises(InvalidArgument) as caught:
        hub.query_kernels(request)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"
    assert caught.value.violations[0].field == "page_token"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (urza_pb2.QueryKernelsRequest(page_size=-1), "page_size"),
        (
            urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(tags_all=["no spaces"])),
            "query.tags_all[0]",
        ),
        (
            urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(input_shape=blueprint_pb2.TensorShape(dims=[0]))),
            "query.input_shape.dims[0]",
        ),
        (urza_pb2.QueryKernelsRequest(query=kernel_pb2.KernelQuery(status=42)), "query.status"),  # type: ignore[arg-type]
    ],
)
def test_bad_queries_name_the_field(hub: UrzaHub, request_: urza_pb2.QueryKernelsRequest, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        hub.query_kernels(request_)
    assert caught.value.violations[0].field == field


def test_unknown_kernel_is_not_found(hub: UrzaHub) -> None:
    with pytest.raises(NotFound) as caught:
        hub.get_kernel(urza_pb2.GetKernelRequest(kernel_id="0123456789ab-cpu-fast-01234567"))
    assert caught.value.reason == "KERNEL_NOT_FOUND"


def test_filter_by_the_kind_of_device_kernels_are_built_for(hub: UrzaHub) -> None:
    submit(hub, sample_ir(seed=21), pipelines=[FAST])
    submit(hub, sample_ir(seed=22), pipelines=[FAST])
    cpu = complete(hub, claim(hub), hardware_target="cpu_x86_64")  # type: ignore[arg-type]
    cuda = complete(hub, claim(hub), hardware_target="cuda_sm80")  # type: ignore[arg-type]
    assert _ids(hub, device_kind="cpu") == [cpu.kernel_id]
    assert _ids(hub, device_kind="cuda") == [cuda.kernel_id]
    assert set(_ids(hub)) == {cpu.kernel_id, cuda.kernel_id}
    with pytest.raises(InvalidArgument) as raised:
        _ids(hub, device_kind="tpu")
    assert raised.value.violations[0].field == "query.device_kind"


def test_a_validator_claims_only_kernels_built_for_its_hardware_target(hub: UrzaHub) -> None:
    from tests.support.urza import claim, complete, kernel_id_for

    submit(hub, sample_ir(16), pipelines=[FAST])
    submit(hub, sample_ir(24), pipelines=[FAST])
    first, second = claim(hub, "w1"), claim(hub, "w2")
    assert first is not None and second is not None
    complete(hub, first, hardware_target="cpu_x86_64", kernel_id=kernel_id_for(first, target="cpu_x86_64"))
    gpu = complete(hub, second, hardware_target="cuda_sm80", kernel_id=kernel_id_for(second, target="cuda_sm80"))
    # A validator measuring on a GPU takes the GPU kernel only, and leaves the CPU one to a CPU validator.
    claimed = hub.claim_validation_job(urza_pb2.ClaimValidationJobRequest(worker_id="gpu", hardware_target="cuda_sm80"))
    assert claimed.kernel.kernel_id == gpu.kernel_id
    none_left = hub.claim_validation_job(
        urza_pb2.ClaimValidationJobRequest(worker_id="gpu-2", hardware_target="cuda_sm80")
    )
    assert not none_left.HasField("kernel")


@pytest.mark.parametrize("target", ["CUDA", "cpu-x86", "x" * 129])
def test_a_malformed_hardware_target_is_refused_naming_the_field(hub: UrzaHub, target: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        hub.claim_validation_job(urza_pb2.ClaimValidationJobRequest(worker_id="v", hardware_target=target))
    assert "hardware_target" in str(caught.value)
