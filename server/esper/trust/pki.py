"""The mesh's PKI: a local certificate authority and one identity per subsystem, plus `operator`.

Layout of a PKI folder (what `esper up` keeps in DIR/pki):

    ca.pem, ca.key            the authority (the key stays here, owner-only)
    NAME.pem, NAME.key        one identity per subsystem and `operator` (keys owner-only)
    bus.key                   the bus's shared HMAC secret (owner-only)
    tezzeret-signing.key      the compile worker's Ed25519 kernel signing key (owner-only)
    kernel-signers.pem        its public key: whose kernels the mesh trusts

An identity's certificate names it twice: a SPIFFE-style URI
`spiffe://<trust domain>/<name>` in its subject alternative names (what the servers'
authorization reads) and its common name; it is valid for `127.0.0.1` and
`localhost` (and any extra DNS names, e.g. a Kubernetes service), for both server
and client authentication. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from esper.trust.identity import (
    CA_CERT,
    LOOPBACK_HOSTS,
    OPERATOR,
    TRUST_DOMAIN,
    TlsFiles,
    TlsIdentity,
    identity_files,
    identity_from_uri,
    spiffe_id,
)
from esper.trust.kernel_signing import KernelSigner, write_key_file

__all__ = [
    "OPERATOR",
    "TRUST_DOMAIN",
    "TlsFiles",
    "TlsIdentity",
    "certificate_identity",
    "ensure_authority",
    "ensure_bus_key",
    "ensure_identities",
    "ensure_kernel_signing",
    "identity_files",
    "identity_from_uri",
    "issue_identity",
    "spiffe_id",
]

CA_KEY = "ca.key"
BUS_KEY = "bus.key"
KERNEL_SIGNING_KEY = "tezzeret-signing.key"
KERNEL_SIGNERS = "kernel-signers.pem"
_VALID_DAYS = 365
_CA_VALID_DAYS = 3650


def ensure_authority(directory: Path, *, trust_domain: str = TRUST_DOMAIN) -> None:
    """Create the CA in `directory` unless it holds one."""
    if (directory / CA_CERT).exists() and (directory / CA_KEY).exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Esper mesh CA ({trust_domain})")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_key_file(directory / CA_KEY, _key_pem(key), mode=0o600)
    write_key_file(directory / CA_CERT, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def issue_identity(
    directory: Path,
    name: str,
    *,
    hosts: Sequence[str] = LOOPBACK_HOSTS,
    trust_domain: str = TRUST_DOMAIN,
) -> TlsFiles:
    """Issue (or re-issue) `name`'s certificate and key from the CA in `directory`."""
    if not name or "/" in name:
        raise ValueError(f"identity name must be a plain name, got {name!r}")
    ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / CA_KEY} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_alternative_names(name, hosts, trust_domain)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = identity_files(directory, name)
    write_key_file(files.key, _key_pem(key), mode=0o600)
    write_key_file(files.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return files


def ensure_identities(
    directory: Path, names: Iterable[str], *, hosts: Sequence[str] = LOOPBACK_HOSTS, trust_domain: str = TRUST_DOMAIN
) -> dict[str, TlsFiles]:
    """The CA and every named identity in `directory`, creating what is missing."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ensure_authority(directory, trust_domain=trust_domain)
    found: dict[str, TlsFiles] = {}
    for name in names:
        files = identity_files(directory, name)
        found[name] = (
            files
            if files.cert.exists() and files.key.exists()
            else issue_identity(directory, name, hosts=hosts, trust_domain=trust_domain)
        )
    return found


def ensure_bus_key(directory: Path) -> Path:
    """The bus's shared HMAC secret (32 random bytes, hex), created owner-only if missing."""
    path = directory / BUS_KEY
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        write_key_file(path, secrets.token_hex(32).encode("ascii") + b"\n", mode=0o600)
    return path


def ensure_kernel_signing(directory: Path) -> tuple[Path, Path]:
    """The compile worker's signing key and the trust file holding its public key."""
    key = directory / KERNEL_SIGNING_KEY
    signer = KernelSigner.load_or_create(key)
    trust = directory / KERNEL_SIGNERS
    signer.write_public_key(trust)
    return key, trust


def certificate_identity(cert_pem: bytes, trust_domain: str = TRUST_DOMAIN) -> str | None:
    """The identity name in a certificate's SPIFFE URI SAN, or None if it has none of this domain."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        found = identity_from_uri(uri, trust_domain)
        if found is not None:
            return found
    return None


def _alternative_names(name: str, hosts: Sequence[str], trust_domain: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id(name, trust_domain))]
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
