"""The asset pipeline end to end, in-process: a catalog template becomes a blueprint in Urza
(SQLite + folder store), Tezzeret compiles it, Urabrask validates the kernels in its
sandbox, and Kasmina's cache loads a module whose output equals the eager build of the IR.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from esper.ir import build_module, example_input
from esper.karn.catalog import TemplateCatalog
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.worker import TezzeretWorker
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.tagging import HIGH_SPEED, LOW_SPEED, MEDIUM_SPEED
from esper.urabrask.validator import UrabraskValidator
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub
from tests.support.signing import TEST_SIGNER, TEST_TRUST

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
STANDARD = kernel_pb2.COMPILATION_PIPELINE_STANDARD
AGGRESSIVE = kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE
VALIDATED = kernel_pb2.KERNEL_STATUS_VALIDATED
URABRASK = UrabraskConfig(worker_id="urabrask-e2e", warmup=2, iterations=20)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    hub = UrzaHub.open(UrzaConfig(data_dir=str(tmp_path / "urza")), trust=TEST_TRUST)
    try:
        yield hub
    finally:
        hub.close()


def run_pipeline(
    hub: UrzaHub, tmp_path: Path, template_id: str, pipelines: list[int]
) -> tuple[blueprint_pb2.BlueprintIR, list[kernel_pb2.KernelArtifact]]:
    template = TemplateCatalog.default().get_template(template_id)
    created = hub.create_blueprint(
        urza_pb2.CreateBlueprintRequest(
            ir=template.ir,
            template_id=template_id,
            name=template.name,
            tier=template.tier,
            pipelines=pipelines,  # type: ignore[arg-type]
        )
    )
    tezzeret = TezzeretWorker(
        hub,
        TezzeretConfig(worker_id="tezzeret-e2e", wal_dir=tmp_path / "wal", work_dir=tmp_path / "work"),
        signer=TEST_SIGNER,
    )
    while tezzeret.run_once():
        pass
    validator = UrabraskValidator(hub, URABRASK, trust=TEST_TRUST)
    while validator.run_once() is not None:
        pass
    answer = hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=created.blueprint.blueprint_id))
    blueprint = answer.blueprint
    assert blueprint.status == blueprint_pb2.BLUEPRINT_STATUS_VALIDATED, blueprint.failure_reason
    return template.ir, list(answer.kernels)


def assert_validated_with_tags(kernel: kernel_pb2.KernelArtifact) -> None:
    report = kernel.validation_report
    assert kernel.status == VALIDATED, report.failure_reason
    assert report.passed and report.latency_ms_mean > 0 and report.memory_mb_peak > 0
    assert len({HIGH_SPEED, MEDIUM_SPEED, LOW_SPEED} & set(kernel.tags)) == 1
    assert set(kernel.tags) == set(report.tags)


def test_template_to_validated_kernel_to_module(hub: UrzaHub, tmp_path: Path) -> None:
    ir, kernels = run_pipeline(hub, tmp_path, "mlp_gelu_e1", [FAST, STANDARD])
    assert sorted(kernel.pipeline for kernel in kernels) == [FAST, STANDARD]
    cache = KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST)
    x = example_input(ir, 6, seed=11)
    with torch.no_grad():
        expected = build_module(ir)(x)
    for kernel in kernels:
        assert_validated_with_tags(kernel)
        loaded = cache.load(kernel.kernel_id)
        assert loaded.artifact.sha256 == kernel.sha256
        with torch.no_grad():
            torch.testing.assert_close(loaded.module(x), expected, rtol=0, atol=1e-5)
        seed_module = cache.instantiate(kernel.kernel_id)
        torch.testing.assert_close(seed_module(x).detach(), expected, rtol=0, atol=1e-5)
    # Tamiyo's question: validated kernels for this shape carrying a speed tag.
    query = kernel_pb2.KernelQuery(status=VALIDATED, input_shape=blueprint_pb2.TensorShape(dims=[64]))
    found = hub.query_kernels(urza_pb2.QueryKernelsRequest(query=query)).result.kernels
    assert {kernel.kernel_id for kernel in found} == {kernel.kernel_id for kernel in kernels}
    assert cache.stats().misses == len(kernels)


@pytest.mark.slow
def test_aggressive_image_kernel_to_module(hub: UrzaHub, tmp_path: Path) -> None:
    """AOTInductor compiles a C++ library: slow, so only in `make test-all`."""
    ir, kernels = run_pipeline(hub, tmp_path, "conv3x3_relu", [AGGRESSIVE])
    (kernel,) = kernels
    assert_validated_with_tags(kernel)
    module = KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST).load(kernel.kernel_id).module
    x = example_input(ir, 3, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(module(x), build_module(ir)(x), rtol=0, atol=1e-3)
