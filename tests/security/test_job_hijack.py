"""The remote-code-execution chain: claim someone's compile job, complete it with one's own bytes,
claim the validation job and pass it. Without the Tezzeret and Urabrask roles no step is allowed; with a
stolen Tezzeret certificate the planted bytes still lack the signing key, and Urza refuses them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.clients import UrzaClient
from esper.errors import InvalidArgument, PermissionDenied
from esper.leyline.v1 import kernel_pb2, urza_pb2
from esper.urza.hub import UrzaHub
from esper.urza.serve import urza_registration
from tests.security.conftest import Pki, TlsServerFactory
from tests.support.signing import OTHER_SIGNER, TEST_TRUST, signed
from tests.support.urza import kernel_id_for, make_hub, program_archive, submit

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST


@pytest.fixture
def urza(tls_server: TlsServerFactory, tmp_path: Path) -> Iterator[tuple[str, UrzaHub]]:
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "store", trust=TEST_TRUST)
    submit(hub, pipelines=[FAST])
    server = tls_server([urza_registration(hub)], "urza")
    yield server.address, hub
    hub.close()


def _planted(job_id: str, lease_token: str, kernel_id: str) -> urza_pb2.CompleteCompileJobRequest:
    return urza_pb2.CompleteCompileJobRequest(
        job_id=job_id,
        lease_token=lease_token,
        kernel=kernel_pb2.KernelArtifact(kernel_id=kernel_id, hardware_target="cpu_x86_64", pipeline=FAST),
        artifact=program_archive(b"attacker's program"),
    )


@pytest.mark.parametrize("attacker", ["operator", "karn", "tamiyo"])
def test_every_step_of_the_hijack_is_denied_without_the_roles(
    urza: tuple[str, UrzaHub], pki: Pki, attacker: str
) -> None:
    address, hub = urza
    job_id = f"job-{hub.list_blueprints(urza_pb2.ListBlueprintsRequest()).blueprints[0].blueprint_id}-fast"
    steps = [
        ("tezzeret", lambda c: c.claim_compile_job(urza_pb2.ClaimCompileJobRequest(worker_id="evil"))),
        ("tezzeret", lambda c: c.complete_compile_job(_planted(job_id, "guessed", "0123456789ab-cpu-fast-0123abcd"))),
        ("urabrask", lambda c: c.claim_validation_job(urza_pb2.ClaimValidationJobRequest(worker_id="evil"))),
        (
            "urabrask",
            lambda c: c.submit_validation_report(
                urza_pb2.SubmitValidationReportRequest(
                    kernel_id="0123456789ab-cpu-fast-0123abcd",
                    lease_token="guessed",
                    report=kernel_pb2.UrabraskValidationReport(passed=True),
                )
            ),
        ),
    ]
    with UrzaClient(pki.client(address, attacker)) as client:
        for role, step in steps:
            with pytest.raises(PermissionDenied) as denied:
                step(client)
            assert denied.value.metadata["required_roles"] == role
    job = hub.get_compile_job(urza_pb2.GetCompileJobRequest(job_id=job_id)).job
    assert job.status == kernel_pb2.COMPILE_JOB_STATUS_QUEUED and job.attempts == 0
    assert hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.total_size == 0


def test_a_stolen_tezzeret_identity_cannot_plant_bytes_it_cannot_sign(urza: tuple[str, UrzaHub], pki: Pki) -> None:
    address, hub = urza
    with UrzaClient(pki.client(address, "tezzeret")) as client:
        job = client.claim_compile_job(urza_pb2.ClaimCompileJobRequest(worker_id="stolen")).job
        planted = _planted(job.job_id, job.lease_token, kernel_id_for(job, target="cpu_x86_64"))
        with pytest.raises(InvalidArgument, match="unsigned") as unsigned:
            client.complete_compile_job(planted)
        assert unsigned.value.reason == "BAD_SIGNATURE"
        signed(planted.kernel, hashlib.sha256(planted.artifact).hexdigest(), OTHER_SIGNER)
        with pytest.raises(InvalidArgument, match="not trusted") as untrusted:
            client.complete_compile_job(planted)
        assert untrusted.value.reason == "BAD_SIGNATURE"
    assert hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.total_size == 0
