"""Kasmina's kernel cache: hits and misses, LRU by count and bytes, checksum failures,
private trainable instances, and outputs equal to the eager build of the IR."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import torch

from esper.errors import DataLoss, FailedPrecondition, NotFound
from esper.ir import build_module, example_input
from esper.kasmina import kernel_cache as kernel_cache_module
from esper.kasmina.config import KernelCacheConfig
from esper.kasmina.kernel_cache import KernelCache, private_copy
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.tezzeret.pipelines import CompiledKernel
from esper.trust.kernel_signing import KernelSigner
from tests.support.kernels import compile_kernel, residual_ir
from tests.support.signing import OTHER_SIGNER, TEST_SIGNER, TEST_TRUST, signed

VALIDATED = kernel_pb2.KERNEL_STATUS_VALIDATED
FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
CHUNK = 4096


class FakeUrza:
    """The two UrzaServiceApi calls the cache makes, over an in-memory table; can corrupt what it sends."""

    def __init__(self) -> None:
        self.kernels: dict[str, tuple[kernel_pb2.KernelArtifact, bytes]] = {}
        self.downloads = 0
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.gate: threading.Event | None = None

    def add(
        self, kernel_id: str, data: bytes, *, status: int = VALIDATED, signer: KernelSigner = TEST_SIGNER
    ) -> kernel_pb2.KernelArtifact:
        kernel = kernel_pb2.KernelArtifact(
            kernel_id=kernel_id,
            pipeline=FAST,
            status=status,  # type: ignore[arg-type]
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
        )
        signed(kernel, kernel.sha256, signer)
        self.kernels[kernel_id] = (kernel, data)
        return kernel

    def get_kernel(self, request: urza_pb2.GetKernelRequest) -> urza_pb2.GetKernelResponse:
        if request.kernel_id not in self.kernels:
            raise NotFound(f"no kernel {request.kernel_id}", reason="KERNEL_NOT_FOUND")
        return urza_pb2.GetKernelResponse(kernel=self.kernels[request.kernel_id][0])

    def download_kernel(self, request: urza_pb2.DownloadKernelRequest) -> Iterator[urza_pb2.DownloadKernelResponse]:
        self.downloads += 1
        if self.gate is not None:
            self.gate.wait(10)
        if request.kernel_id not in self.kernels:  # as Urza: the call fails before any chunk
            raise NotFound(f"no kernel {request.kernel_id}", reason="KERNEL_NOT_FOUND")
        kernel, data = self.kernels[request.kernel_id]
        if request.kernel_id in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if request.kernel_id in self.truncate:
            data = data[: len(data) // 2]
        for offset in range(0, len(data), CHUNK):
            yield urza_pb2.DownloadKernelResponse(
                chunk_data=data[offset : offset + CHUNK],
                offset=offset,
                total_size=kernel.size_bytes,
                sha256=kernel.sha256,
            )


IR = residual_ir(width=16, init_seed=0)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledKernel:
    return compile_kernel(IR, tmp_path_factory.mktemp("kernel"))


@pytest.fixture
def urza(compiled: CompiledKernel) -> FakeUrza:
    fake = FakeUrza()
    for name in ("a", "b", "c", "d"):
        fake.add(name, compiled.artifact)
    return fake


def make_cache(urza: FakeUrza, **config: Any) -> KernelCache:
    return KernelCache(cast(UrzaServiceApi, urza), KernelCacheConfig(**config), trust=TEST_TRUST)


def test_miss_then_hits(urza: FakeUrza) -> None:
    cache = make_cache(urza)
    first = cache.load("a")
    assert cache.load("a") is first
    assert cache.load("a") is first
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 1, 1)
    assert stats.bytes == len(urza.kernels["a"][1])
    assert urza.downloads == 1
    assert cache.hit_rate == pytest.approx(2 / 3)
    assert first.artifact.kernel_id == "a"


def test_loaded_module_equals_eager(urza: FakeUrza) -> None:
    cache = make_cache(urza)
    x = example_input(IR, 5, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(cache.load("a").module(x), build_module(IR)(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(cache.instantiate("a")(x), build_module(IR)(x), rtol=0, atol=1e-5)


def test_lru_by_count_evicts_least_recently_used(urza: FakeUrza) -> None:
    cache = make_cache(urza, max_entries=2)
    cache.load("a")
    cache.load("b")
    cache.load("a")  # a is now more recent than b
    cache.load("c")
    assert cache.cached_ids() == ["a", "c"]
    assert "b" not in cache
    assert cache.stats().evictions == 1
    cache.load("b")
    assert cache.stats().misses == 4
    assert cache.cached_ids() == ["c", "b"]


def test_lru_by_bytes(urza: FakeUrza) -> None:
    size = len(urza.kernels["a"][1])
    cache = make_cache(urza, max_entries=100, max_bytes=2 * size + size // 2)
    for kernel_id in ("a", "b", "c"):
        cache.load(kernel_id)
    assert cache.cached_ids() == ["b", "c"]
    stats = cache.stats()
    assert stats.bytes == 2 * size
    assert stats.evictions == 1


def test_kernel_larger_than_the_cache_is_served_but_not_kept(urza: FakeUrza) -> None:
    cache = make_cache(urza, max_bytes=100)
    loaded = cache.load("a")
    assert loaded.module is not None
    assert cache.cached_ids() == []
    assert cache.stats().bytes == 0


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_damaged_bytes_are_rejected_and_never_loaded(
    urza: FakeUrza, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    getattr(urza, damage).add("a")
    loads: list[bytes] = []
    monkeypatch.setattr(kernel_cache_module, "load_kernel_module", lambda data, pipeline: loads.append(data))
    cache = make_cache(urza)
    with pytest.raises(DataLoss) as caught:
        cache.load("a")
    assert caught.value.reason == "CHECKSUM_MISMATCH"
    assert loads == []
    assert "a" not in cache
    stats = cache.stats()
    assert (stats.checksum_failures, stats.entries) == (1, 0)


def test_bytes_that_pass_the_checksum_but_do_not_load(urza: FakeUrza) -> None:
    urza.add("junk", b"PK\x03\x04 stored like this by a broken compiler")
    cache = make_cache(urza)
    with pytest.raises(FailedPrecondition):
        cache.load("junk")
    assert "junk" not in cache
    assert cache.stats().load_failures == 1


def test_only_validated_kernels_are_loaded(urza: FakeUrza, compiled: CompiledKernel) -> None:
    urza.add("pending", compiled.artifact, status=kernel_pb2.KERNEL_STATUS_COMPILED)
    with pytest.raises(FailedPrecondition) as caught:
        make_cache(urza).load("pending")
    assert "COMPILED" in str(caught.value)
    assert make_cache(urza, require_validated=False).load("pending").module is not None


def test_unknown_kernel_is_not_found(urza: FakeUrza) -> None:
    with pytest.raises(NotFound):
        make_cache(urza).load("nope")


def test_concurrent_loads_of_one_kernel_fetch_once(urza: FakeUrza) -> None:
    cache = make_cache(urza)
    urza.gate = threading.Event()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.load("a"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    urza.gate.set()
    for thread in threads:
        thread.join(10)
    assert urza.downloads == 1
    assert len(results) == 4
    assert all(result is results[0] for result in results)


def test_evict_drops_a_kernel(urza: FakeUrza) -> None:
    cache = make_cache(urza)
    cache.load("a")
    assert cache.evict("a")
    assert not cache.evict("a")
    assert cache.stats().bytes == 0
    cache.load("a")
    assert urza.downloads == 2


def test_instances_train_independently(urza: FakeUrza) -> None:
    cache = make_cache(urza)
    shared = cache.load("a").module
    before = {name: param.detach().clone() for name, param in shared.named_parameters()}
    first, second = cache.instantiate("a"), cache.instantiate("a")
    assert {id(p) for p in first.parameters()}.isdisjoint(id(p) for p in second.parameters())
    assert {id(p) for p in first.parameters()}.isdisjoint(id(p) for p in shared.parameters())

    optimizer = torch.optim.SGD(first.parameters(), lr=0.1)
    first(example_input(IR, 8)).pow(2).sum().backward()
    assert all(param.grad is not None for param in first.parameters())
    optimizer.step()

    for name, param in first.named_parameters():
        assert not torch.equal(param, before[name]), f"{name} did not train"
    for module in (second, shared):
        for name, param in module.named_parameters():
            assert torch.equal(param, before[name]), f"{name} changed in another instance"
            assert param.grad is None


def test_unchecked_instance_computes_the_same_and_still_refuses_wrong_shapes(urza: FakeUrza) -> None:
    cache = make_cache(urza)
    checked, unchecked = cache.instantiate("a"), cache.instantiate("a", check_inputs=False)
    x = example_input(IR, 5)
    with torch.no_grad():
        torch.testing.assert_close(unchecked(x), checked(x), rtol=0, atol=0)
    wrong = torch.randn(5, 7)
    with pytest.raises(RuntimeError, match="Expected input"):
        checked(wrong)
    with pytest.raises(RuntimeError):
        unchecked(wrong)
    with pytest.raises(RuntimeError, match="Expected input"):
        cache.instantiate("a")(wrong)  # the flag stayed on the one instance


def test_private_copy_keeps_structure_and_hooks_separate() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    module.register_buffer("scale", torch.ones(4))
    copy = private_copy(module)
    assert type(copy) is type(module)
    assert [name for name, _ in copy.named_parameters()] == [name for name, _ in module.named_parameters()]
    assert copy.get_buffer("scale").data_ptr() != module.get_buffer("scale").data_ptr()
    calls: list[str] = []
    copy.register_forward_hook(lambda *args: calls.append("copy"))
    module(torch.zeros(1, 4))
    assert calls == []
    copy(torch.zeros(1, 4))
    assert calls == ["copy"]


def test_with_a_real_hub_corrupted_storage_is_data_loss(tmp_path: Path, compiled: CompiledKernel) -> None:
    from tests.support.urza import claim, make_hub, submit, validate

    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "artifacts")
    try:
        submit(hub, IR, pipelines=[FAST])
        job = claim(hub)
        assert job is not None
        kernel = compiled.kernel
        hub.complete_compile_job(
            urza_pb2.CompleteCompileJobRequest(
                job_id=job.job_id, lease_token=job.lease_token, kernel=kernel, artifact=compiled.artifact
            )
        )
        validate(hub)
        cache = KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST)
        x = example_input(IR, 4)
        with torch.no_grad():
            loaded = cache.load(kernel.kernel_id).module(x)
            torch.testing.assert_close(loaded, build_module(IR)(x), rtol=0, atol=1e-5)

        (stored,) = (tmp_path / "artifacts" / "kernels" / kernel.kernel_id).glob("*.pt2")
        stored.write_bytes(stored.read_bytes()[:-10])
        fresh = KernelCache(hub, KernelCacheConfig(), trust=TEST_TRUST)
        with pytest.raises(DataLoss) as caught:
            fresh.load(kernel.kernel_id)
        assert caught.value.reason == "CHECKSUM_MISMATCH"
        assert kernel.kernel_id not in fresh
        assert fresh.stats().checksum_failures == 1
    finally:
        hub.close()


def test_unsigned_and_untrusted_kernels_are_refused_before_they_load(
    urza: FakeUrza, compiled: CompiledKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    monkeypatch.setattr(kernel_cache_module, "load_kernel_module", lambda *args: loads.append("load"))
    urza.add("stranger", compiled.artifact, signer=OTHER_SIGNER)
    urza.add("unsigned", compiled.artifact)
    urza.kernels["unsigned"][0].ClearField("signature")
    urza.add("relabelled", compiled.artifact)
    urza.kernels["relabelled"][0].pipeline = kernel_pb2.COMPILATION_PIPELINE_STANDARD
    cache = make_cache(urza)
    for kernel_id, message in (("stranger", "not trusted"), ("unsigned", "unsigned"), ("relabelled", "not verify")):
        with pytest.raises(FailedPrecondition, match=message) as caught:
            cache.load(kernel_id)
        assert caught.value.reason == "BAD_SIGNATURE"
        assert kernel_id not in cache
    no_trust = KernelCache(cast(UrzaServiceApi, urza), KernelCacheConfig())
    with pytest.raises(FailedPrecondition, match="no trusted signing key"):
        no_trust.load("a")
    assert loads == []
    assert cache.stats().signature_failures == 3


def test_config_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        KernelCacheConfig(max_entries=0)
    with pytest.raises(ValueError):
        KernelCacheConfig(max_bytes=0)
