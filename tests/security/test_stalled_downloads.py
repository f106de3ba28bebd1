"""Clients that open kernel downloads and stop reading: Urza streams from its store one chunk at a time,
so twenty of them hold a few chunks, not twenty artifacts; a server-side deadline ends them; the server
keeps serving everyone else."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from esper.clients import UrzaClient
from esper.leyline.v1 import kernel_pb2, urza_pb2, urza_pb2_grpc
from esper.mesh.tls import secure_channel
from esper.urza.hub import UrzaHub
from esper.urza.serve import urza_registration
from tests.security.conftest import Pki, TlsServerFactory
from tests.support.servers import EsperServeProcess
from tests.support.urza import claim, complete, make_hub, submit

MIB = 1024 * 1024
ARTIFACT_MIB = 24
STALLED = 20


@pytest.fixture
def urza(tmp_path: Path) -> Iterator[tuple[UrzaHub, str]]:
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "store")
    submit(hub, pipelines=[kernel_pb2.COMPILATION_PIPELINE_FAST])
    job = claim(hub)
    assert job is not None
    # Random-looking bytes, so nothing along the way can compress them away.
    payload = hashlib.shake_256(b"big kernel").digest(ARTIFACT_MIB * MIB)
    kernel = complete(hub, job, payload)
    yield hub, kernel.kernel_id
    hub.close()


def _stall(channels: list[grpc.Channel], kernel_id: str) -> list[object]:
    """Open a download on each channel and read its first chunk only."""
    streams = []
    for channel in channels:
        stream = urza_pb2_grpc.UrzaServiceStub(channel).DownloadKernel(
            urza_pb2.DownloadKernelRequest(kernel_id=kernel_id, chunk_size=MIB), timeout=120
        )
        assert len(next(stream).chunk_data) == MIB
        streams.append(stream)
    return streams


def test_stalled_downloads_hold_bounded_memory_and_the_server_keeps_serving(
    urza: tuple[UrzaHub, str], esper_serve: Callable[..., EsperServeProcess], pki: Pki, tmp_path: Path
) -> None:
    _, kernel_id = urza
    identity = [f"--tls-{part}={pki.directory / name}" for part, name in (("cert", "urza.pem"), ("key", "urza.key"))]
    server = esper_serve(
        "urza",
        f"--db=sqlite:///{tmp_path / 'urza.db'}",
        f"--store={tmp_path / 'store'}",
        *identity,
        f"--tls-ca={pki.directory / 'ca.pem'}",
        "--no-metrics",
    )
    urza_process = psutil.Process(server.process.pid)
    before = urza_process.memory_info().rss
    channels = [secure_channel(server.address, pki.identity("tolaria")) for _ in range(STALLED)]
    try:
        streams = _stall(channels, kernel_id)
        grown = (urza_process.memory_info().rss - before) / MIB
        # Whole artifacts in memory would be STALLED x ARTIFACT_MIB = 480 MiB.
        assert grown < STALLED * ARTIFACT_MIB / 4, f"Urza grew {grown:.0f} MiB for {STALLED} stalled downloads"
        with UrzaClient(pki.client(server.address, "operator")) as client:
            kernel = client.get_kernel(urza_pb2.GetKernelRequest(kernel_id=kernel_id)).kernel
        assert kernel.size_bytes > ARTIFACT_MIB * MIB
        for stream in streams:
            stream.cancel()  # type: ignore[attr-defined]
    finally:
        for channel in channels:
            channel.close()


def test_a_download_that_outlives_its_server_side_deadline_is_ended(
    urza: tuple[UrzaHub, str], tls_server: TlsServerFactory, pki: Pki
) -> None:
    hub, kernel_id = urza
    server = tls_server([urza_registration(hub, download_deadline_seconds=1.0)], "urza")
    with secure_channel(server.address, pki.identity("tolaria")) as channel:
        (stream,) = _stall([channel], kernel_id)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stream:  # type: ignore[attr-defined]
                pass_time()
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def pass_time() -> None:
    """A reader slower than the deadline allows: a second per chunk."""
    import time

    time.sleep(1.0)
