"""`esper kernel verify`: the checks Kasmina runs before loading a kernel, offline, with the reason on failure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from esper.cli.main import main
from esper.leyline.v1 import kernel_pb2
from esper.tezzeret.pipelines import CompiledKernel
from esper.trust.kernel_signing import KernelSigner
from tests.support.crafted import duplicate_config_artifact
from tests.support.kernels import compile_kernel, residual_ir
from tests.support.signing import OTHER_SIGNER, TEST_SIGNER, signed


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledKernel:
    return compile_kernel(residual_ir(width=8, hidden=8), tmp_path_factory.mktemp("kernel"))


@pytest.fixture
def trust(tmp_path: Path) -> Path:
    path = tmp_path / "signers.pem"
    TEST_SIGNER.write_public_key(path)
    return path


def _write(folder: Path, data: bytes, kernel: kernel_pb2.KernelArtifact | None) -> Path:
    artifact = folder / "kernel.pt2"
    artifact.write_bytes(data)
    if kernel is not None:
        (folder / "kernel.pt2.kernel.json").write_text(json_format.MessageToJson(kernel))
    return artifact


def _resigned(
    kernel: kernel_pb2.KernelArtifact, data: bytes, signer: KernelSigner = TEST_SIGNER
) -> kernel_pb2.KernelArtifact:
    copy = kernel_pb2.KernelArtifact()
    copy.CopyFrom(kernel)
    copy.sha256 = hashlib.sha256(data).hexdigest()
    signed(copy, copy.sha256, signer)
    return copy


def test_a_signed_kernel_verifies(
    compiled: CompiledKernel, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = _write(tmp_path, compiled.artifact, _resigned(compiled.kernel, compiled.artifact))
    assert main(["kernel", "verify", str(artifact), "--trust", str(trust), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["ok"] and view["signed_by"] == TEST_SIGNER.key_id


@pytest.mark.parametrize("pickled_first", [True, False])
def test_crafted_archives_are_refused_even_when_signed(
    compiled: CompiledKernel, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pickled_first: bool
) -> None:
    marker = tmp_path / "payload-ran"
    crafted = duplicate_config_artifact(compiled.artifact, marker, pickled_first=pickled_first)
    artifact = _write(tmp_path, crafted, _resigned(compiled.kernel, crafted))
    assert main(["kernel", "verify", str(artifact), "--trust", str(trust)]) == 1
    assert "UNSAFE_ARTIFACT" in capsys.readouterr().err
    assert not marker.exists()


def test_unsigned_and_wrongly_signed_kernels_are_refused(
    compiled: CompiledKernel, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = _write(tmp_path, compiled.artifact, None)
    assert main(["kernel", "verify", str(artifact), "--trust", str(trust)]) == 1
    assert "unsigned" in capsys.readouterr().err
    _write(tmp_path, compiled.artifact, _resigned(compiled.kernel, compiled.artifact, OTHER_SIGNER))
    assert main(["kernel", "verify", str(artifact), "--trust", str(trust)]) == 1
    assert "not trusted" in capsys.readouterr().err
    other = _resigned(compiled.kernel, compiled.artifact)
    other.hardware_target = "cpu_elsewhere"
    _write(tmp_path, compiled.artifact, other)
    assert main(["kernel", "verify", str(artifact), "--trust", str(trust)]) == 1
    assert "BAD_SIGNATURE" in capsys.readouterr().err


def test_the_bytes_must_match_the_metadata(
    compiled: CompiledKernel, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = _write(tmp_path, compiled.artifact, _resigned(compiled.kernel, compiled.artifact))
    artifact.write_bytes(compiled.artifact + b"x")
    assert main(["kernel", "verify", str(artifact), "--trust", str(trust)]) == 1
    assert "DATA_LOSS" in capsys.readouterr().err


def test_without_trust_the_command_says_what_is_missing(tmp_path: Path) -> None:
    artifact = _write(tmp_path, b"x", None)
    with pytest.raises(SystemExit) as caught:
        main(["kernel", "verify", str(artifact)])
    assert caught.value.code == 2
