"""Karn's built-in catalog: invariants of every template, instantiation and queries."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from esper.errors import InvalidArgument, NotFound
from esper.ir import build_module, example_input, parameter_count, validate_ir
from esper.karn import TemplateCatalog
from esper.karn.templates import builtin_templates
from esper.leyline.v1 import blueprint_pb2

SAFE = blueprint_pb2.BLUEPRINT_TIER_SAFE
EXPERIMENTAL = blueprint_pb2.BLUEPRINT_TIER_EXPERIMENTAL
ADVERSARIAL = blueprint_pb2.BLUEPRINT_TIER_ADVERSARIAL
FEATURES = blueprint_pb2.INPUT_KIND_FEATURES
IMAGE = blueprint_pb2.INPUT_KIND_IMAGE
SEQUENCE = blueprint_pb2.INPUT_KIND_SEQUENCE
CAUSAL = blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE

# Sites Esper's default hosts use: features of width 16..256, images of 4..64 channels at 4..28.
HOST_SHAPES = {
    FEATURES: [(16,), (32,), (64,), (128,), (256,)],
    IMAGE: [(c, s, s) for c in (4, 8, 16, 32, 64) for s in (4, 8, 14, 28)],
    SEQUENCE: [(8, 32), (16, 64), (4, 16)],
    CAUSAL: [(8, 32), (64, 32), (64, 64)],
}


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.default()


def test_at_least_fifty_unique_well_named_templates(catalog: TemplateCatalog) -> None:
    templates = catalog.list_templates()
    ids = [t.template_id for t in templates]
    assert len(ids) >= 50
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for template in templates:
        assert re.fullmatch(r"[a-z0-9_]{1,64}", template.template_id)
        assert template.name.strip() and template.description.strip()
        assert template.tags and all(re.fullmatch(r"[a-z0-9_]+", tag) for tag in template.tags)


def test_every_tier_and_input_kind_is_present(catalog: TemplateCatalog) -> None:
    templates = catalog.list_templates()
    assert {t.tier for t in templates} == {SAFE, EXPERIMENTAL, ADVERSARIAL}
    assert {t.input_kind for t in templates} == {FEATURES, IMAGE, SEQUENCE, CAUSAL}
    for kind in (FEATURES, IMAGE, SEQUENCE):
        assert {t.tier for t in templates if t.input_kind == kind} == {SAFE, EXPERIMENTAL, ADVERSARIAL}


def test_required_families_are_present(catalog: TemplateCatalog) -> None:
    ids = set(catalog.template_ids())
    expected = {
        "lora_r2", "lora_r4", "lora_r8", "lora_r16", "scale_only", "gated_mlp_e1",
        "mlp_relu_e05", "mlp_relu_e1", "mlp_relu_e2", "mlp_relu_e4", "mlp_gelu_e2", "mlp_silu_e2",
        "prenorm_mlp_gelu_e2", "conv3x3_relu", "bottleneck_r2", "dwsep_conv3x3_relu", "gn_conv3x3_g4",
        "se_r2", "se_r4", "se_r8", "conv5x5_relu", "attn_h1", "attn_h2", "attn_h4", "seq_mlp_gelu_e2",
        "feature_attention_t4_h1", "deep_linear_chain_16", "mlp_relu_e16", "tanh_chain_8", "attn_many_heads",
    }  # fmt: skip
    assert expected <= ids


def test_default_shapes(catalog: TemplateCatalog) -> None:
    defaults = {FEATURES: [64], IMAGE: [16, 8, 8], SEQUENCE: [8, 32], CAUSAL: [8, 32]}
    for template in catalog.list_templates():
        assert list(template.ir.input_shape.dims) == defaults[template.input_kind]
        assert template.ir.input_kind == template.input_kind


def test_every_ir_is_valid_and_its_estimate_is_computed(catalog: TemplateCatalog) -> None:
    for template in catalog.list_templates():
        validate_ir(template.ir)
        module = build_module(template.ir)
        numel = sum(p.numel() for p in module.parameters())
        assert template.parameter_estimate == parameter_count(template.ir) == numel, template.template_id


def test_blocks_start_gently(catalog: TemplateCatalog) -> None:
    # The seed adds alpha * block(host); safe and experimental blocks start as a small delta.
    for template in catalog.list_templates():
        if template.tier == ADVERSARIAL:
            continue
        x = example_input(template.ir, batch_size=16)
        with torch.no_grad():
            ratio = build_module(template.ir)(x).norm() / x.norm()
        assert ratio < 0.15, (template.template_id, float(ratio))


def test_safe_templates_fit_every_default_host_shape(catalog: TemplateCatalog) -> None:
    unfit = []
    for template in catalog.list_templates(tier=SAFE, growth_kind=blueprint_pb2.GROWTH_KIND_DEPTH):
        for shape in HOST_SHAPES[template.input_kind]:
            try:
                catalog.instantiate(template.template_id, shape)
            except InvalidArgument as error:
                unfit.append((template.template_id, shape, error.message))
    assert unfit == []


def test_every_template_fits_a_mid_sized_host(catalog: TemplateCatalog) -> None:
    shapes = {FEATURES: (128,), IMAGE: (32, 14, 14), SEQUENCE: (16, 64), CAUSAL: (16, 64)}
    for template in catalog.list_templates(growth_kind=blueprint_pb2.GROWTH_KIND_DEPTH):
        instance = catalog.instantiate(template.template_id, shapes[template.input_kind])
        validate_ir(instance.ir)


@pytest.mark.parametrize(
    ("template_id", "shape"),
    [
        ("mlp_gelu_e2", (32,)),
        ("se_r4", (8, 28, 28)),
        ("attn_h2", (16, 64)),
        ("dwsep_conv3x3_relu", (64, 4, 4)),
    ],
)
def test_instantiate_at_a_shape(catalog: TemplateCatalog, template_id: str, shape: tuple[int, ...]) -> None:
    instance = catalog.instantiate(template_id, shape, init_seed=5)
    assert instance.template_id == template_id
    assert tuple(instance.ir.input_shape.dims) == tuple(instance.ir.output_shape.dims) == shape
    assert instance.ir.init_seed == 5
    assert instance.parameter_estimate == parameter_count(instance.ir)
    assert instance.parameter_estimate != catalog.get_template(template_id).parameter_estimate
    x = example_input(instance.ir, batch_size=2)
    assert build_module(instance.ir)(x).shape == x.shape


def test_instantiate_at_the_default_shape_is_the_catalog_entry(catalog: TemplateCatalog) -> None:
    entry = catalog.get_template("mlp_relu_e2")
    assert catalog.instantiate("mlp_relu_e2", tuple(entry.ir.input_shape.dims)) == entry


@pytest.mark.parametrize(
    ("template_id", "shape", "reason"),
    [
        ("mlp_relu_e2", (8, 8), "rank 1"),
        ("conv3x3_relu", (64,), "rank 3"),
        ("attn_h4", (8, 30), "heads"),
        ("feature_attention_t4_h1", (30,), "tokens"),
        ("gn_conv3x3_g4", (6, 8, 8), "divisible"),
        ("lora_r16", (8,), "rank 16"),
        ("mlp_relu_e2", (0,), "dim"),
    ],
)
def test_instantiate_refuses_an_incompatible_shape(
    catalog: TemplateCatalog, template_id: str, shape: tuple[int, ...], reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        catalog.instantiate(template_id, shape)
    assert caught.value.violations[0].field == "input_shape"
    assert reason in caught.value.violations[0].description
    assert template_id in caught.value.violations[0].description


def test_get_unknown_template(catalog: TemplateCatalog) -> None:
    with pytest.raises(NotFound) as caught:
        catalog.get_template("no_such_template")
    assert caught.value.reason == "TEMPLATE_NOT_FOUND"
    with pytest.raises(NotFound):
        catalog.instantiate("no_such_template", (64,))


def test_returned_templates_are_copies(catalog: TemplateCatalog) -> None:
    entry = catalog.get_template("lora_r4")
    entry.name = "changed"
    entry.ir.nodes[0].node_id = "changed"
    assert catalog.get_template("lora_r4").name != "changed"
    assert catalog.get_template("lora_r4").ir.nodes[0].node_id != "changed"


def test_list_filters(catalog: TemplateCatalog) -> None:
    everything = catalog.list_templates()
    adversarial = catalog.list_templates(tier=ADVERSARIAL)
    assert adversarial and all(t.tier == ADVERSARIAL for t in adversarial)
    images = catalog.list_templates(input_kind=IMAGE)
    assert images and all(t.input_kind == IMAGE for t in images)
    low_rank = catalog.list_templates(tag="low_rank")
    assert {"lora_r2", "seq_lora_r4"} <= {t.template_id for t in low_rank}
    assert all("low_rank" in t.tags for t in low_rank)
    safe_images = catalog.list_templates(tier=SAFE, input_kind=IMAGE)
    assert {t.template_id for t in safe_images} == {
        t.template_id for t in everything if t.tier == SAFE and t.input_kind == IMAGE
    }
    assert catalog.list_templates(tag="no_such_tag") == []


def test_query_defaults_to_safe_and_orders_by_parameters(catalog: TemplateCatalog) -> None:
    results = catalog.query(input_kind=FEATURES, input_shape=None, tiers=[], tags_all=[],
                            max_parameter_estimate=0, limit=1000)  # fmt: skip
    assert results and all(t.tier == SAFE and t.input_kind == FEATURES for t in results)
    keys = [(t.parameter_estimate, t.template_id) for t in results]
    assert keys == sorted(keys)
    depth = blueprint_pb2.GROWTH_KIND_DEPTH
    assert len(results) == len(catalog.list_templates(tier=SAFE, input_kind=FEATURES, growth_kind=depth))


def test_query_instantiates_at_the_site_shape_and_skips_what_does_not_fit(catalog: TemplateCatalog) -> None:
    results = catalog.query(input_kind=SEQUENCE, input_shape=(8, 30), tiers=[SAFE, EXPERIMENTAL],
                            tags_all=["attention"], max_parameter_estimate=0, limit=100)  # fmt: skip
    ids = {t.template_id for t in results}
    assert "attn_h1" in ids and "attn_h2" in ids
    assert "attn_h4" not in ids and "attn_h8" not in ids
    assert all(tuple(t.ir.input_shape.dims) == (8, 30) for t in results)
    assert all(t.parameter_estimate == parameter_count(t.ir) for t in results)


def test_query_budget_tags_tiers_and_limit(catalog: TemplateCatalog) -> None:
    budget = 2000
    cheap = catalog.query(input_kind=FEATURES, input_shape=(64,), tiers=[SAFE, EXPERIMENTAL, ADVERSARIAL],
                          tags_all=[], max_parameter_estimate=budget, limit=100)  # fmt: skip
    assert cheap and all(t.parameter_estimate <= budget for t in cheap)
    assert "mlp_relu_e4" not in {t.template_id for t in cheap}
    tagged = catalog.query(input_kind=0, input_shape=None, tiers=[SAFE], tags_all=["mlp", "prenorm"],
                           max_parameter_estimate=0, limit=100)  # fmt: skip
    assert tagged and all({"mlp", "prenorm"} <= set(t.tags) for t in tagged)
    adversarial = catalog.query(input_kind=IMAGE, input_shape=(16, 8, 8), tiers=[ADVERSARIAL], tags_all=[],
                                max_parameter_estimate=0, limit=2)  # fmt: skip
    all_adversarial = catalog.query(input_kind=IMAGE, input_shape=(16, 8, 8), tiers=[ADVERSARIAL],
                                    tags_all=[], max_parameter_estimate=0, limit=100)  # fmt: skip
    assert len(adversarial) == 2 and adversarial == all_adversarial[:2]
    assert all(t.tier == ADVERSARIAL for t in all_adversarial)


def test_query_by_shape_without_kind_matches_the_rank(catalog: TemplateCatalog) -> None:
    results = catalog.query(input_kind=0, input_shape=(32, 8, 8), tiers=[SAFE], tags_all=[],
                            max_parameter_estimate=0, limit=1000)  # fmt: skip
    assert results and all(t.input_kind == IMAGE for t in results)


def test_catalog_refuses_duplicate_or_bad_ids() -> None:
    specs = builtin_templates()
    with pytest.raises(ValueError, match="duplicate"):
        TemplateCatalog([specs[0], specs[0]])
    bad = dataclasses.replace(specs[0], template_id="Bad-Id")
    with pytest.raises(ValueError, match="Bad-Id"):
        TemplateCatalog([bad])


def test_causal_sequence_blocks_never_let_a_token_read_a_later_one(catalog: TemplateCatalog) -> None:
    causal = catalog.list_templates(input_kind=CAUSAL)
    assert any("attention" in t.tags for t in causal)
    for entry in causal:
        ir = catalog.instantiate(entry.template_id, [12, 16]).ir
        module = build_module(ir)
        x = torch.randn(2, 12, 16)
        later = x.clone()
        later[:, 7:] += torch.randn(2, 5, 16)
        with torch.no_grad():
            assert torch.equal(module(x)[:, :7], module(later)[:, :7]), entry.template_id


def test_a_causal_sequence_ir_with_bidirectional_attention_is_refused(catalog: TemplateCatalog) -> None:
    ir = catalog.instantiate("attn_h2", [8, 32]).ir
    ir.input_kind = CAUSAL
    with pytest.raises(InvalidArgument) as caught:
        validate_ir(ir)
    assert caught.value.violations[0].field.endswith("attributes.causal")
