"""Fetch a whole kernel artifact through any UrzaServiceApi, verified against its SHA-256.

Kasmina's kernel cache uses this both in-process (UrzaHub) and remotely (UrzaClient).
"""

from __future__ import annotations

import hashlib

from esper.errors import DataLoss
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi


def download_kernel_bytes(
    api: UrzaServiceApi, kernel_id: str, *, chunk_size: int = 0
) -> tuple[bytes, kernel_pb2.KernelArtifact]:
    """The artifact's bytes and metadata; DataLoss (CHECKSUM_MISMATCH) if the chunks do not add
    up to the recorded size and SHA-256."""
    kernel: kernel_pb2.KernelArtifact | None = None
    digest = hashlib.sha256()
    parts: list[bytes] = []
    received = 0
    for chunk in api.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=kernel_id, chunk_size=chunk_size)):
        if kernel is None:
            # The first chunk carries the metadata; an older Urza sends none, so ask for it.
            kernel = chunk.kernel if chunk.HasField("kernel") else _metadata(api, kernel_id)
        if chunk.offset != received:
            raise _mismatch(kernel_id, f"chunk at offset {chunk.offset}, expected {received}")
        if chunk.sha256 != kernel.sha256 or chunk.total_size != kernel.size_bytes:
            raise _mismatch(kernel_id, "the stream describes another artifact than the kernel's metadata")
        digest.update(chunk.chunk_data)
        parts.append(chunk.chunk_data)
        received += len(chunk.chunk_data)
    if kernel is None:
        kernel = _metadata(api, kernel_id)
    if received != kernel.size_bytes:
        raise _mismatch(kernel_id, f"received {received} bytes, expected {kernel.size_bytes}")
    actual = digest.hexdigest()
    if actual != kernel.sha256:
        raise _mismatch(kernel_id, f"received bytes have sha256 {actual}, expected {kernel.sha256}")
    return b"".join(parts), kernel


def _metadata(api: UrzaServiceApi, kernel_id: str) -> kernel_pb2.KernelArtifact:
    kernel: kernel_pb2.KernelArtifact = api.get_kernel(urza_pb2.GetKernelRequest(kernel_id=kernel_id)).kernel
    return kernel


def _mismatch(kernel_id: str, detail: str) -> DataLoss:
    return DataLoss(f"kernel {kernel_id}: {detail}", reason="CHECKSUM_MISMATCH")
