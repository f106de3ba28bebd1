"""Kernels that must never run: a crafted archive whose duplicated config makes torch unpickle a payload
(in both orders), an unsigned kernel and one signed by a key nobody trusts. Kasmina culls the seed with
the reason, Urza refuses the upload, Urabrask rejects the kernel, and the payload never runs."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from esper.errors import FailedPrecondition, InvalidArgument
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig, KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.source import CachedKernelSource
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.tezzeret.pipelines import CompiledKernel
from esper.trust.kernel_signing import KernelSigner
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.validator import UrabraskValidator
from esper.urza.hub import UrzaHub
from tests.support.crafted import duplicate_config_artifact
from tests.support.kasmina import RUN_ID, advance, germinate, mlp_host
from tests.support.kernels import compile_kernel, residual_ir
from tests.support.signing import OTHER_SIGNER, TEST_SIGNER, TEST_TRUST, signed
from tests.support.urza import claim, make_hub, submit, validate

IR = residual_ir(width=16, init_seed=0)
FAST = kernel_pb2.COMPILATION_PIPELINE_FAST


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledKernel:
    return compile_kernel(IR, tmp_path_factory.mktemp("kernel"))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    # No trust configured: Urza stores whatever a compile worker sends, so the consumers' own checks are tested.
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "store")
    yield hub
    hub.close()


def _store(hub: UrzaHub, compiled: CompiledKernel, data: bytes, signer: KernelSigner | None) -> str:
    submit(hub, IR, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    kernel = kernel_pb2.KernelArtifact()
    kernel.CopyFrom(compiled.kernel)
    kernel.ClearField("signature")
    if signer is not None:
        signed(kernel, hashlib.sha256(data).hexdigest(), signer)
    hub.complete_compile_job(
        urza_pb2.CompleteCompileJobRequest(job_id=job.job_id, lease_token=job.lease_token, kernel=kernel, artifact=data)
    )
    validate(hub)
    return kernel.kernel_id


def test_the_crafted_archive_is_a_real_attack_on_torch_export_load(compiled: CompiledKernel, tmp_path: Path) -> None:
    """Loaded by torch alone (in a child process), one of the two orders runs the payload."""
    ran = []
    for pickled_first in (True, False):
        marker = tmp_path / f"payload-ran-{pickled_first}"
        path = tmp_path / f"crafted-{pickled_first}.pt2"
        path.write_bytes(duplicate_config_artifact(compiled.artifact, marker, pickled_first=pickled_first))
        load = f"import io, torch\ntry:\n    torch.export.load({str(path)!r})\nexcept Exception:\n    pass\n"
        subprocess.run([sys.executable, "-c", load], capture_output=True, timeout=120, check=False)
        ran.append(marker.exists())
    assert any(ran), "the crafted archive should make torch's own loader unpickle its payload"


@pytest.mark.parametrize("pickled_first", [True, False])
def test_a_crafted_archive_is_refused_everywhere_and_its_payload_never_runs(
    compiled: CompiledKernel, hub: UrzaHub, tmp_path: Path, pickled_first: bool
) -> None:
    marker = tmp_path / "payload-ran"
    crafted = duplicate_config_artifact(compiled.artifact, marker, pickled_first=pickled_first)
    # Urza refuses the upload (format check at CompleteCompileJob), even signed by the trusted key.
    submit(hub, IR, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    kernel = kernel_pb2.KernelArtifact()
    kernel.CopyFrom(compiled.kernel)
    signed(kernel, hashlib.sha256(crafted).hexdigest())
    with pytest.raises(InvalidArgument) as refused:
        hub.complete_compile_job(
            urza_pb2.CompleteCompileJobRequest(
                job_id=job.job_id, lease_token=job.lease_token, kernel=kernel, artifact=crafted
            )
        )
    assert refused.value.reason == "UNSAFE_ARTIFACT"
    # Kasmina's loader refuses the same bytes (should a store ever hold them).
    from esper.tezzeret.artifacts import load_kernel_module

    with pytest.raises(FailedPrecondition) as unsafe:
        load_kernel_module(crafted, FAST)
    assert unsafe.value.reason == "UNSAFE_ARTIFACT" and "twice" in unsafe.value.message
    assert not marker.exists()


@pytest.mark.parametrize(("signer", "reason"), [(None, "unsigned"), (OTHER_SIGNER, "not trusted")])
def test_an_unsigned_or_untrusted_kernel_culls_its_seed_with_the_reason(
    compiled: CompiledKernel, hub: UrzaHub, signer: KernelSigner | None, reason: str
) -> None:
    kernel_id = _store(hub, compiled, compiled.artifact, signer)
    config = KasminaConfig(target_module_types=("ReLU",))
    model = wrap(mlp_host(), config, example_input=torch.randn(2, 8))
    cache = KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST)
    operator = KasminaOperator(model, CachedKernelSource(cache, hub), config, run_id=RUN_ID)
    germinate(operator, "1", kernel_id)
    assert advance(operator, "1", lc.LOADING, "load").stage == lc.CULLED
    assert reason in model.seed("1").last_transition_reason
    assert kernel_id not in cache and cache.stats().signature_failures == 1


def test_urabrask_rejects_an_unsigned_kernel_before_its_sandbox(compiled: CompiledKernel, hub: UrzaHub) -> None:
    submit(hub, IR, pipelines=[FAST])
    job = claim(hub)
    assert job is not None
    kernel = kernel_pb2.KernelArtifact()
    kernel.CopyFrom(compiled.kernel)
    kernel.ClearField("signature")
    hub.complete_compile_job(
        urza_pb2.CompleteCompileJobRequest(
            job_id=job.job_id, lease_token=job.lease_token, kernel=kernel, artifact=compiled.artifact
        )
    )
    sandboxed: list[str] = []

    def sandbox(*args: object) -> kernel_pb2.UrabraskValidationReport:
        sandboxed.append("ran")
        raise AssertionError("an unsigned kernel must not reach the sandbox")

    report = UrabraskValidator(hub, UrabraskConfig(), characterize=sandbox, trust=TEST_TRUST).run_once()
    assert report is not None and not report.passed
    assert report.failure_reason.startswith("bad_signature: ") and sandboxed == []
    stored = hub.get_kernel(urza_pb2.GetKernelRequest(kernel_id=kernel.kernel_id)).kernel
    assert stored.status == kernel_pb2.KERNEL_STATUS_REJECTED


def test_a_signed_kernel_is_loaded(compiled: CompiledKernel, hub: UrzaHub) -> None:
    kernel_id = _store(hub, compiled, compiled.artifact, TEST_SIGNER)
    cache = KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST)
    assert cache.load(kernel_id).artifact.signature.key_id == TEST_SIGNER.key_id
