"""Regrowth: a fossilized seed's site gets a dormant child seed, which can grow again; checkpoints
and save_model/load_model keep the tree."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.persistence import LINEAGE_FILE, load_model, save_model
from esper.kasmina.wrapping import wrap
from tests.support.kasmina import CATALOG, RUN_ID, FakeKernelSource, bring_to, mlp_host, template_ir, train_steps

CONFIG = KasminaConfig(target_module_types=("ReLU",), width_seeds=True, ramp_steps=2)


def _setup(config: KasminaConfig = CONFIG) -> KasminaOperator:
    model = wrap(mlp_host(), config, example_input=torch.randn(4, 8))
    source = FakeKernelSource(
        irs={
            "k-mlp": template_ir("mlp_relu_e1", [16], init_seed=3),
            "k-w4": CATALOG.instantiate("widen_k4", [8], output_shape=[16], init_seed=4).ir,
            "k-w4b": CATALOG.instantiate("widen_k4", [16], output_shape=[3], init_seed=6).ir,
            "k-w4-grown": CATALOG.instantiate("widen_k4", [8], output_shape=[20], init_seed=7).ir,
        }
    )
    return KasminaOperator(model, source, config, run_id=RUN_ID)


def _grow(operator: KasminaOperator, seed_id: str, kernel_id: str) -> None:
    bring_to(operator, seed_id, lc.TRAINING, kernel_id)
    train_steps(operator.model, 3, lr=0.5)
    bring_to(operator, seed_id, lc.EVALUATING, kernel_id)
    operator.record_eval_gain(seed_id, 0.04)
    bring_to(operator, seed_id, lc.FINE_TUNING, kernel_id)
    train_steps(operator.model, 2, lr=0.5)
    bring_to(operator, seed_id, lc.FOSSILIZED, kernel_id)


def test_a_fossilized_site_grows_a_child_that_grows_again() -> None:
    operator = _setup()
    model = operator.model
    _grow(operator, "1", "k-mlp")
    child = model.seed("1/2")
    assert child.stage == lc.DORMANT and not child.hooked
    assert (child.descriptor.parent_seed_id, child.site) == ("1", "1")
    _grow(operator, "1/2", "k-mlp")
    assert model.seed("1/3").descriptor.parent_seed_id == "1/2"
    _grow(operator, "w:0", "k-w4")
    assert model.seed("w:0/2").descriptor.output_site == "2"
    assert model.seed_ids() == ["w:0", "1", "w:2", "3", "1/2", "1/3", "w:0/2"]


def test_a_child_stacks_its_block_on_its_parents_output() -> None:
    operator = _setup()
    model = operator.model
    _grow(operator, "1", "k-mlp")
    _grow(operator, "1/2", "k-mlp")
    parent, child = model.seed("1").kernel, model.seed("1/2").kernel
    assert parent is not None and child is not None
    host = mlp_host()
    host.load_state_dict(model.host.state_dict())
    x = torch.randn(8, 8)
    with torch.no_grad():
        h = torch.relu(host[0](x))
        h = h + parent(h)
        h = h + child(h)
        expected = host[4](torch.relu(host[2](h)))
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)


def test_no_child_beyond_max_seeds() -> None:
    operator = _setup(KasminaConfig(target_module_types=("ReLU",), width_seeds=True, ramp_steps=2, max_seeds=4))
    _grow(operator, "1", "k-mlp")
    assert operator.model.seed_ids() == ["w:0", "1", "w:2", "3"]


def test_a_checkpoint_restores_its_layout_both_ways() -> None:
    operator = _setup()
    before = operator.state_dict()
    _grow(operator, "1", "k-mlp")
    bring_to(operator, "1/2", lc.TRAINING, "k-mlp")
    grown = operator.state_dict()
    x = torch.randn(8, 8)
    grown_out = operator.model(x)

    operator.load_state_dict(before)  # a rollback to before the growth: the child goes
    assert operator.model.seed_ids() == ["w:0", "1", "w:2", "3"]
    assert operator.model.seed("1").stage == lc.DORMANT
    assert not any(seed.hooked for seed in operator.model.seed_list())

    fresh = _setup()  # a resume into a fresh model: the child comes back, TRAINING
    fresh.load_state_dict(grown)
    assert fresh.model.seed_ids() == ["w:0", "1", "w:2", "3", "1/2"]
    assert fresh.model.seed("1/2").stage == lc.TRAINING
    assert torch.equal(fresh.model(x), grown_out)


def test_grown_and_regrown_model_saves_and_reloads_to_the_same_outputs(tmp_path: Path) -> None:
    operator = _setup()
    model = operator.model
    _grow(operator, "1", "k-mlp")
    _grow(operator, "1/2", "k-mlp")
    _grow(operator, "w:0", "k-w4")
    _grow(operator, "w:0/2", "k-w4")
    x = torch.randn(32, 8)
    expected = model(x)

    save_model(model, tmp_path)
    loaded = load_model(tmp_path, host=mlp_host(seed=7))

    assert torch.equal(loaded(x), expected)
    assert loaded.seed_ids() == model.seed_ids()
    lineage = json.loads((tmp_path / LINEAGE_FILE).read_text())
    tree = {entry["descriptor"]["seedId"]: entry["children"] for entry in lineage["seeds"]}
    assert tree["1"] == ["1/2"] and tree["1/2"] == ["1/3"] and tree["w:0"] == ["w:0/2"]
    assert tree["w:0/2"] == ["w:0/3"] and tree["3"] == []


def _fossilize_checked(operator: KasminaOperator, seed_id: str, kernel_id: str, x: torch.Tensor) -> None:
    """Grow the seed to FINE_TUNING, then fossilize it: merging must not change what the model computes."""
    bring_to(operator, seed_id, lc.TRAINING, kernel_id)
    train_steps(operator.model, 3, lr=0.5)
    bring_to(operator, seed_id, lc.EVALUATING, kernel_id)
    operator.record_eval_gain(seed_id, 0.04)
    bring_to(operator, seed_id, lc.FINE_TUNING, kernel_id)
    with torch.no_grad():
        before = operator.model(x)
    bring_to(operator, seed_id, lc.FOSSILIZED, kernel_id)
    with torch.no_grad():
        torch.testing.assert_close(operator.model(x), before, rtol=0, atol=1e-5)


def test_merges_keep_the_function_and_older_seeds_read_and_write_the_units_they_knew(tmp_path: Path) -> None:
    operator = _setup()
    model = operator.model
    x = torch.randn(16, 8)
    start = copy.deepcopy(operator.state_dict())
    with torch.no_grad():
        original = model(x)
    bring_to(operator, "w:2", lc.TRAINING, "k-w4b")  # under way while layer 0 grows: it keeps its 16 inputs
    _fossilize_checked(operator, "w:0", "k-w4", x)
    assert (model.host[0].out_features, model.host[2].in_features) == (20, 20)
    assert list(model.seed("w:2").descriptor.input_shape.dims) == [16]
    _fossilize_checked(operator, "w:2", "k-w4b", x)
    assert (model.host[2].out_features, model.host[4].in_features) == (20, 20)
    assert not model.host[2].weight[16:, 16:].any()  # new units of layer 2 from new units of layer 0: zero, to learn
    # Dormant width seeds follow the host: the child at layer 2 reads all 20 inputs, the one at
    # layer 0 writes all 20 outputs of layer 2.
    assert list(model.seed("w:2/2").descriptor.input_shape.dims) == [20]
    assert list(model.seed("w:0/2").descriptor.output_shape.dims) == [20]
    # A depth seed at activation 1 (now 20 wide) acts on its first 16 units.
    _fossilize_checked(operator, "1", "k-mlp", x)
    _fossilize_checked(operator, "w:0/2", "k-w4-grown", x)
    assert model.host[0].out_features == 24
    train_steps(model, 2)  # the grown host trains as one network
    with torch.no_grad():
        grown = model(x)
    save_model(model, tmp_path)
    assert torch.equal(load_model(tmp_path, host=mlp_host(seed=9))(x), grown)

    operator.load_state_dict(start)  # a rollback to before any growth shrinks the host back
    assert (model.host[0].out_features, model.host[2].in_features, model.host[4].in_features) == (16, 16, 16)
    assert list(model.seed("w:2").descriptor.input_shape.dims) == [16]
    with torch.no_grad():
        assert torch.equal(model(x), original)


def test_a_width_kernel_chosen_before_the_host_grew_still_fits() -> None:
    operator = _setup()
    model = operator.model
    x = torch.randn(16, 8)
    _fossilize_checked(operator, "w:0", "k-w4", x)  # layer 2 now reads 20 inputs
    assert list(model.seed("w:2").descriptor.input_shape.dims) == [20]
    # Tamiyo chose this kernel for 16 inputs in the step that grew the host: the seed takes it.
    bring_to(operator, "w:2", lc.TRAINING, "k-w4b")
    seed = model.seed("w:2")
    assert seed.stage == lc.TRAINING
    assert list(seed.descriptor.input_shape.dims) == [16]
    train_steps(model, 2)
