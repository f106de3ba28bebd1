"""Seeds fed by the real kernel path: a Tezzeret-compiled kernel in Urza, through the kernel cache."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig, KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.persistence import load_model, save_model
from esper.kasmina.source import CachedKernelSource
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.urza.hub import UrzaHub
from tests.support.kasmina import RUN_ID, advance, bring_to, germinate, mlp_host, template_ir, train_steps
from tests.support.kernels import compile_kernel
from tests.support.signing import TEST_TRUST
from tests.support.urza import claim, make_hub, submit, validate

IR = template_ir("mlp_relu_e1", [16], init_seed=11)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "artifacts")
    try:
        yield hub
    finally:
        hub.close()


def _store_validated_kernel(hub: UrzaHub, work: Path) -> str:
    submit(hub, IR, pipelines=[kernel_pb2.COMPILATION_PIPELINE_FAST])
    job = claim(hub)
    assert job is not None
    compiled = compile_kernel(IR, work)
    hub.complete_compile_job(
        urza_pb2.CompleteCompileJobRequest(
            job_id=job.job_id, lease_token=job.lease_token, kernel=compiled.kernel, artifact=compiled.artifact
        )
    )
    validate(hub)
    return compiled.kernel.kernel_id


def test_a_compiled_kernel_trains_in_isolation_grafts_fossilizes_and_reloads(hub: UrzaHub, tmp_path: Path) -> None:
    kernel_id = _store_validated_kernel(hub, tmp_path / "tezzeret")
    config = KasminaConfig(target_module_types=("ReLU",), isolation_check_every=1, ramp_steps=2)
    host = mlp_host()
    reference = copy.deepcopy(host)
    model = wrap(host, config, example_input=torch.randn(2, 8))
    source = CachedKernelSource(KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST), hub)
    operator = KasminaOperator(model, source, config, run_id=RUN_ID)

    bring_to(operator, "1", lc.TRAINING, kernel_id=kernel_id)
    seed = model.seed("1")
    adaptation = seed.adaptation
    assert adaptation is not None and adaptation.ir == IR and adaptation.parameter_count == 544
    x = torch.randn(16, 8)
    assert torch.equal(model(x), reference(x))
    train_steps(model, 3)  # the exported program learns under the isolation check
    assert seed.isolation_violations == 0 and seed.stage == lc.TRAINING

    bring_to(operator, "1", lc.EVALUATING, kernel_id=kernel_id)
    bring_to(operator, "1", lc.FOSSILIZED, kernel_id=kernel_id)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model", host=mlp_host())
    assert torch.equal(loaded(x), model(x))


def test_a_kernel_for_another_shape_is_culled_at_load(hub: UrzaHub, tmp_path: Path) -> None:
    kernel_id = _store_validated_kernel(hub, tmp_path / "tezzeret")
    config = KasminaConfig(target_module_types=("Linear",))  # activations of [16], [16] and [3]
    model = wrap(mlp_host(), config, example_input=torch.randn(2, 8))
    source = CachedKernelSource(KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST), hub)
    operator = KasminaOperator(model, source, config, run_id=RUN_ID)
    germinate(operator, "4", kernel_id)
    assert advance(operator, "4", lc.LOADING, "load").stage == lc.CULLED
    assert "the seed sees [batch, [3]]" in model.seed("4").last_transition_reason
