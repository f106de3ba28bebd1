"""Who a peer is on the mesh: SPIFFE-style identities and where an identity's TLS material lives.

Kept apart from esper.trust.pki (which needs `cryptography` to make certificates) so
that configs and the command line can name identities cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TRUST_DOMAIN = "esper.local"
OPERATOR = "operator"
CA_CERT = "ca.pem"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def spiffe_id(name: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/{name}"


def identity_from_uri(uri: str, trust_domain: str = TRUST_DOMAIN) -> str | None:
    """The identity name a SPIFFE URI of this trust domain names, or None for any other URI."""
    prefix = f"spiffe://{trust_domain}/"
    if not uri.startswith(prefix):
        return None
    name = uri[len(prefix) :]
    return name if name and "/" not in name else None


@dataclass(frozen=True)
class TlsFiles:
    """Where one identity's TLS material is: the CA to trust, its certificate and its key."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> TlsIdentity:
        try:
            return TlsIdentity(self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read TLS material {exc.filename}: {exc.strerror}") from None


@dataclass(frozen=True, repr=False)
class TlsIdentity:
    """One identity's TLS material in PEM: the CA certificate(s) to trust, its chain and its key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:  # never show the key
        return "TlsIdentity(...)"


def identity_files(directory: Path, name: str) -> TlsFiles:
    return TlsFiles(ca=directory / CA_CERT, cert=directory / f"{name}.pem", key=directory / f"{name}.key")
