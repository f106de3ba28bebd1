"""save_model / load_model: a fossilized model reloads to the same outputs, with its lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from esper.errors import FailedPrecondition
from esper.hosts import build_host, default_host_spec
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.kernel_cache import private_copy
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.persistence import LINEAGE_FILE, MODEL_FILE, load_model, save_model
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.tezzeret.artifacts import load_kernel_module
from tests.support.kasmina import (
    RUN_ID,
    FakeKernelSource,
    bring_to,
    features_source,
    mlp_host,
    mlp_setup,
    template_ir,
    train_steps,
)
from tests.support.kernels import export_artifact

RELU = KasminaConfig(target_module_types=("ReLU",), ramp_steps=2)


def _grow(operator: KasminaOperator, seed_id: str, kernel_id: str = "k-mlp") -> None:
    """Train the kernel a little (so its weights are not the IR's initial ones), then fossilize it."""
    bring_to(operator, seed_id, lc.TRAINING, kernel_id)
    train_steps(operator.model, 3, lr=0.5)
    bring_to(operator, seed_id, lc.EVALUATING, kernel_id)
    operator.record_eval_gain(seed_id, 0.04)
    bring_to(operator, seed_id, lc.FINE_TUNING, kernel_id)
    train_steps(operator.model, 2, lr=0.5)
    bring_to(operator, seed_id, lc.FOSSILIZED, kernel_id)


def test_fossilized_model_reloads_to_the_same_outputs(tmp_path: Path) -> None:
    model, operator, source, _ = mlp_setup(RELU)
    _grow(operator, "1")
    x = torch.randn(32, 8)
    expected = model(x)
    assert not torch.equal(model.seed("1").kernel_parameters()[0], source.instantiate("k-mlp").ops.n_linear_0.weight)

    save_model(model, tmp_path)
    loaded = load_model(tmp_path, host=mlp_host(seed=123))

    assert torch.equal(loaded(x), expected)
    seed = loaded.seed("1")
    assert seed.stage == lc.FOSSILIZED and seed.alpha == 1.0
    assert all(not p.requires_grad for p in seed.kernel_parameters())
    assert loaded.seed("3").stage == lc.DORMANT and not loaded.seed("3").hooked
    assert [d.seed_id for d in loaded.seed_layout()] == ["1", "3", "1/2"]


def test_model_file_is_a_plain_state_dict_and_lineage_records_the_growth(tmp_path: Path) -> None:
    model, operator, _, _ = mlp_setup(RELU)
    _grow(operator, "3")
    save_model(model, tmp_path)
    weights = torch.load(tmp_path / MODEL_FILE, weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in weights.values())
    assert {key for key in weights if key.startswith("seeds.")} == {
        f"seeds.1.kernel.{key}"
        for key in model.seed("3").kernel.state_dict()  # type: ignore[union-attr]
    }
    lineage = json.loads((tmp_path / LINEAGE_FILE).read_text())
    assert lineage["host"]["class"] == "torch.nn.modules.container.Sequential" and lineage["host"]["spec"] is None
    fossil = lineage["seeds"][1]
    assert fossil["stage"] == "FOSSILIZED" and fossil["alpha"] == 1.0
    assert fossil["descriptor"]["seedId"] == "3" and fossil["descriptor"]["inputShape"]["dims"] == ["16"]
    adaptation = fossil["adaptation"]
    assert adaptation["kernel_id"] == "k-mlp" and adaptation["blueprint_id"] == "bp-k-mlp"
    assert adaptation["template_id"] == "tpl-k-mlp" and adaptation["eval_gain"] == pytest.approx(0.04)
    assert adaptation["germination_epoch"] == 0 and adaptation["fossilization_epoch"] == 0
    assert adaptation["ir"]["nodes"] and lineage["seeds"][0]["stage"] == "DORMANT"


def test_seeds_mid_adaptation_are_recorded_but_not_kept(tmp_path: Path) -> None:
    model, operator, _, _ = mlp_setup(RELU)
    _grow(operator, "1")
    bring_to(operator, "3", lc.GRAFTING)
    train_steps(model, 2)  # alpha reaches 1: the grafting seed changes the output
    x = torch.randn(8, 8)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, host=mlp_host())
    with model.forced_alpha(0.0, ["3"]):
        assert torch.equal(loaded(x), model(x))
    assert loaded.seed("3").stage == lc.DORMANT
    assert json.loads((tmp_path / LINEAGE_FILE).read_text())["seeds"][1]["stage"] == "GRAFTING"


def test_esper_host_is_rebuilt_from_its_recorded_spec(tmp_path: Path) -> None:
    host = build_host(default_host_spec(blueprint_pb2.INPUT_KIND_FEATURES, [8], 3))
    model = wrap(host, RELU, example_input=torch.randn(2, 8))
    operator = KasminaOperator(model, features_source(width=16), run_id=RUN_ID)
    site = model.seed_ids()[0]
    _grow(operator, site)
    x = torch.randn(16, 8)
    save_model(model, tmp_path)
    assert json.loads((tmp_path / LINEAGE_FILE).read_text())["host"]["spec"]["kind"] == "mlp"
    loaded = load_model(tmp_path)
    assert type(loaded.host) is type(host)
    assert torch.equal(loaded(x), model(x))


def test_host_without_spec_needs_the_host_module(tmp_path: Path) -> None:
    model, _, _, _ = mlp_setup(RELU)
    save_model(model, tmp_path)
    with pytest.raises(FailedPrecondition, match="pass the host"):
        load_model(tmp_path)
    assert torch.equal(load_model(tmp_path, host=mlp_host(seed=5))(torch.ones(1, 8)), model(torch.ones(1, 8)))


def test_fossil_without_a_known_ir_cannot_be_saved(tmp_path: Path) -> None:
    model, operator, _, _ = mlp_setup(RELU)
    bring_to(operator, "1", lc.EVALUATING, kernel_id="k-fixed")
    bring_to(operator, "1", lc.FOSSILIZED, kernel_id="k-fixed")
    with pytest.raises(FailedPrecondition, match="blueprint IR"):
        save_model(model, tmp_path)


def test_exported_kernel_fossil_reloads_from_its_ir(tmp_path: Path) -> None:
    """The real path: a torch.export artifact (as the kernel cache loads it) saved and rebuilt eagerly."""
    from esper.ir import build_module, example_input

    ir = template_ir("mlp_relu_e1", [16], init_seed=7)
    program = load_kernel_module(
        export_artifact(build_module(ir), example_input(ir, 4)), kernel_pb2.COMPILATION_PIPELINE_FAST
    )
    source = FakeKernelSource(irs={"k-exported": ir}, factories={"k-exported": lambda: private_copy(program)})
    model, operator, _, _ = mlp_setup(RELU, source)
    _grow(operator, "1", "k-exported")
    x = torch.randn(16, 8)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path, host=mlp_host())
    assert torch.equal(loaded(x), model(x))
