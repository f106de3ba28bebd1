"""Streaming kernel bytes, checksum verification, and the fetch helper."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.errors import DataLoss, InvalidArgument, NotFound
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.urza.fetch import download_kernel_bytes
from esper.urza.hub import UrzaHub
from tests.support.urza import claim, complete, program_archive, submit

PAYLOAD = bytes(range(256)) * 40
ARTIFACT = program_archive(PAYLOAD)  # a little over 10240 bytes


@pytest.fixture
def kernel(hub: UrzaHub) -> kernel_pb2.KernelArtifact:
    submit(hub, pipelines=[kernel_pb2.COMPILATION_PIPELINE_FAST])
    job = claim(hub)
    assert job is not None
    return complete(hub, job, PAYLOAD)


def _stored_file(tmp_path: Path, kernel: kernel_pb2.KernelArtifact) -> Path:
    (path,) = (tmp_path / "artifacts" / "kernels" / kernel.kernel_id).glob("*.pt2")
    return path


def test_chunks_cover_the_artifact_and_carry_its_checksum(hub: UrzaHub, kernel: kernel_pb2.KernelArtifact) -> None:
    chunks = list(hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id, chunk_size=4096)))
    assert [chunk.offset for chunk in chunks] == [0, 4096, 8192]
    assert [len(chunk.chunk_data) for chunk in chunks] == [4096, 4096, len(ARTIFACT) - 8192]
    assert {chunk.sha256 for chunk in chunks} == {hashlib.sha256(ARTIFACT).hexdigest()}
    assert {chunk.total_size for chunk in chunks} == {len(ARTIFACT)}
    assert b"".join(chunk.chunk_data for chunk in chunks) == ARTIFACT


def test_default_chunk_is_one_mebibyte(hub: UrzaHub, kernel: kernel_pb2.KernelArtifact) -> None:
    (chunk,) = hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id))
    assert chunk.chunk_data == ARTIFACT


@pytest.mark.parametrize("chunk_size", [100, 4095, 4 * 1024 * 1024 + 1])
def test_chunk_size_out_of_range_is_refused(hub: UrzaHub, kernel: kernel_pb2.KernelArtifact, chunk_size: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id, chunk_size=chunk_size))
    assert caught.value.violations[0].field == "chunk_size"


def test_corrupted_stored_bytes_are_data_loss(hub: UrzaHub, kernel: kernel_pb2.KernelArtifact, tmp_path: Path) -> None:
    path = _stored_file(tmp_path, kernel)
    corrupted = bytearray(path.read_bytes())
    corrupted[100] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    with pytest.raises(DataLoss) as caught:
        list(hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id)))
    assert caught.value.reason == "CHECKSUM_MISMATCH"


def test_a_corruption_is_found_before_the_last_chunk_is_sent(
    hub: UrzaHub, kernel: kernel_pb2.KernelArtifact, tmp_path: Path
) -> None:
    path = _stored_file(tmp_path, kernel)
    corrupted = bytearray(path.read_bytes())
    corrupted[-30] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    chunks = hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id, chunk_size=4096))
    received = []
    with pytest.raises(DataLoss):
        for chunk in chunks:
            received.append(chunk)
    assert [chunk.offset for chunk in received] == [0, 4096]


def test_a_stored_file_of_another_size_is_data_loss_at_once(
    hub: UrzaHub, kernel: kernel_pb2.KernelArtifact, tmp_path: Path
) -> None:
    path = _stored_file(tmp_path, kernel)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DataLoss):
        hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id))


def test_missing_stored_bytes_are_data_loss(hub: UrzaHub, kernel: kernel_pb2.KernelArtifact, tmp_path: Path) -> None:
    _stored_file(tmp_path, kernel).unlink()
    with pytest.raises(DataLoss):
        hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id))


def test_unknown_kernel_download_is_not_found(hub: UrzaHub) -> None:
    with pytest.raises(NotFound) as caught:
        hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id="0123456789ab-cpu-fast-01234567"))
    assert caught.value.reason == "KERNEL_NOT_FOUND"


def test_fetch_assembles_and_verifies(hub: UrzaHub, kernel: kernel_pb2.KernelArtifact) -> None:
    data, metadata = download_kernel_bytes(hub, kernel.kernel_id, chunk_size=4096)
    assert data == ARTIFACT
    assert metadata == kernel


def test_the_first_chunk_carries_the_metadata_so_one_call_fetches_a_kernel(
    hub: UrzaHub, kernel: kernel_pb2.KernelArtifact
) -> None:
    chunks = list(hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel.kernel_id, chunk_size=4096)))
    assert len(chunks) > 1
    assert chunks[0].kernel == kernel
    assert not any(chunk.HasField("kernel") for chunk in chunks[1:])

    class NoGetKernel:
        def download_kernel(self, request: urza_pb2.DownloadKernelRequest) -> object:
            return hub.download_kernel(request)

        def get_kernel(self, request: urza_pb2.GetKernelRequest) -> object:
            raise AssertionError("a fetch from a current Urza needs no GetKernel call")

    data, metadata = download_kernel_bytes(NoGetKernel(), kernel.kernel_id)  # type: ignore[arg-type]
    assert data == ARTIFACT and metadata == kernel


class _TamperingApi:
    """Passes metadata through and flips one byte of the second chunk, as a broken proxy would."""

    def __init__(self, hub: UrzaHub) -> None:
        self._hub = hub

    def get_kernel(self, request: urza_pb2.GetKernelRequest) -> urza_pb2.GetKernelResponse:
        return self._hub.get_kernel(request)

    def download_kernel(self, request: urza_pb2.DownloadKernelRequest) -> Iterator[urza_pb2.DownloadKernelResponse]:
        for index, chunk in enumerate(self._hub.download_kernel(request)):
            if index == 1:
                chunk.chunk_data = bytes([chunk.chunk_data[0] ^ 1]) + chunk.chunk_data[1:]
            yield chunk


class _TruncatingApi(_TamperingApi):
    def download_kernel(self, request: urza_pb2.DownloadKernelRequest) -> Iterator[urza_pb2.DownloadKernelResponse]:
        yield next(iter(self._hub.download_kernel(request)))


@pytest.mark.parametrize("api_class", [_TamperingApi, _TruncatingApi])
def test_fetch_refuses_bytes_that_do_not_match(
    hub: UrzaHub, kernel: kernel_pb2.KernelArtifact, api_class: type[_TamperingApi]
) -> None:
    with pytest.raises(DataLoss) as caught:
        download_kernel_bytes(api_class(hub), kernel.kernel_id, chunk_size=4096)  # type: ignore[arg-type]
    assert caught.value.reason == "CHECKSUM_MISMATCH"
