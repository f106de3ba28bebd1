"""Ed25519 signatures of kernel artifacts: Tezzeret signs, Kasmina and Urabrask verify.

A signature covers the statement "esper.kernel.v1\\n<sha256>\\n<kernel id>\\n<target>\\n<pipeline>"
(see `KernelSignature` in kernel.proto), so the same bytes presented as another
kernel, target or pipeline do not verify, and nothing Urza computes (it hashes
whatever was uploaded) can stand in for the compile worker's key.

Keys are PEM files: a PKCS#8 private key (mode 0600) for a signer, and one or more
SubjectPublicKeyInfo public keys, concatenated, for a verifier (a trust file, so a
key can be rotated by trusting the old and the new one for a while).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from esper.errors import FailedPrecondition
from esper.fsutil import atomic_write
from esper.leyline.v1 import kernel_pb2

STATEMENT_TAG = "esper.kernel.v1"
KEY_ID_HEX_DIGITS = 16
_PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class KernelSignatureError(FailedPrecondition):
    """A kernel is unsigned, signed by a key not trusted here, or its signature does not verify."""

    reason = "BAD_SIGNATURE"


def pipeline_label(pipeline: int) -> str:
    return kernel_pb2.CompilationPipeline.Name(pipeline).removeprefix("COMPILATION_PIPELINE_").lower()


def signed_statement(sha256: str, kernel_id: str, hardware_target: str, pipeline: int) -> bytes:
    """The exact bytes a kernel signature covers."""
    return "\n".join((STATEMENT_TAG, sha256, kernel_id, hardware_target, pipeline_label(pipeline))).encode("utf-8")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_DIGITS]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class KernelSigner:
    """Signs kernel artifacts with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_file(cls, path: Path) -> KernelSigner:
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"signing key {str(path)!r} is not a readable PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"signing key {str(path)!r} is not an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> KernelSigner:
        """The key in `path`, created (owner-only) if there is none: how an embedded run gets its key."""
        path = Path(path)
        if not path.exists():
            # Two runs starting at once on one cache: the first link wins and both use its key.
            scratch = path.with_name(f".{path.name}.{os.getpid()}.new")
            write_private_key(scratch, Ed25519PrivateKey.generate())
            try:
                os.link(scratch, path)
            except FileExistsError:
                pass
            finally:
                scratch.unlink(missing_ok=True)
        return cls.from_file(path)

    def sign(self, kernel: kernel_pb2.KernelArtifact, sha256: str) -> kernel_pb2.KernelSignature:
        statement = signed_statement(sha256, kernel.kernel_id, kernel.hardware_target, kernel.pipeline)
        return kernel_pb2.KernelSignature(signature=self._key.sign(statement), key_id=self.key_id)

    def write_public_key(self, path: Path) -> None:
        """The public half, for the trust files of whoever verifies this signer's kernels."""
        write_key_file(Path(path), public_key_pem(self.public_key), mode=0o644)


@dataclass(frozen=True)
class TrustedSigners:
    """The public keys whose kernel signatures a verifier accepts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "trust file") -> TrustedSigners:
        keys: dict[str, Ed25519PublicKey] = {}
        for block in _PEM_PUBLIC_KEY.findall(data):
            try:
                key = serialization.load_pem_public_key(block)
            except ValueError as exc:
                raise ValueError(f"{source}: a public key does not parse: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"{source}: holds a key that is not Ed25519")
            keys[key_id(key)] = key
        if not keys:
            raise ValueError(f"{source}: holds no PEM public key")
        return cls(keys)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustedSigners:
        keys: dict[str, Ed25519PublicKey] = {}
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"trust file {str(path)!r} cannot be read: {exc.strerror}") from None
            keys.update(cls.from_pem(data, source=f"trust file {str(path)!r}").keys)
        if not keys:
            raise ValueError("no trusted kernel signing key was given")
        return cls(keys)

    @classmethod
    def of(cls, *signers: KernelSigner) -> TrustedSigners:
        return cls({signer.key_id: signer.public_key for signer in signers})

    def verify(self, kernel: kernel_pb2.KernelArtifact, sha256: str) -> str:
        """The key id that signed `kernel` whose bytes have `sha256`; KernelSignatureError otherwise."""
        if not kernel.HasField("signature") or not kernel.signature.signature:
            raise KernelSignatureError(f"kernel {kernel.kernel_id} is unsigned; only signed kernels are loaded")
        signature = kernel.signature
        public_key = self.keys.get(signature.key_id)
        if public_key is None:
            raise KernelSignatureError(
                f"kernel {kernel.kernel_id} is signed by key {signature.key_id[:32]!r}, which is not trusted here"
            )
        statement = signed_statement(sha256, kernel.kernel_id, kernel.hardware_target, kernel.pipeline)
        try:
            public_key.verify(signature.signature, statement)
        except InvalidSignature:
            raise KernelSignatureError(
                f"kernel {kernel.kernel_id}: its signature does not verify for these bytes, id, target and pipeline"
            ) from None
        return signature.key_id


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_key_file(path, pem, mode=0o600)


def write_key_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write a key file whole, created with `mode` (a private key is never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=mode)
    os.chmod(path, mode)
