"""The mesh PKI: a CA, identities with SPIFFE URIs valid for loopback, keys readable by the owner only."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from esper.trust.pki import (
    certificate_identity,
    ensure_bus_key,
    ensure_identities,
    ensure_kernel_signing,
    identity_from_uri,
    spiffe_id,
)


def test_identities_chain_to_the_ca_and_name_themselves(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    files = ensure_identities(pki, ["urza", "operator"])
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    for name, found in files.items():
        cert = x509.load_pem_x509_certificate(found.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert certificate_identity(found.cert.read_bytes()) == name
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe_id(name)]
        assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        assert stat.S_IMODE(found.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700


def test_ensuring_again_keeps_what_exists(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    first = ensure_identities(pki, ["karn"])["karn"].cert.read_bytes()
    assert ensure_identities(pki, ["karn", "nissa"])["karn"].cert.read_bytes() == first
    key = ensure_bus_key(pki)
    assert ensure_bus_key(pki).read_bytes() == key.read_bytes() and len(key.read_text().strip()) == 64
    signing, trust = ensure_kernel_signing(pki)
    assert stat.S_IMODE(signing.stat().st_mode) == 0o600 and b"PUBLIC KEY" in trust.read_bytes()


def test_only_uris_of_the_trust_domain_name_an_identity() -> None:
    assert identity_from_uri("spiffe://esper.local/tezzeret") == "tezzeret"
    assert identity_from_uri("spiffe://elsewhere/tezzeret") is None
    assert identity_from_uri("spiffe://esper.local/a/b") is None
    assert identity_from_uri("spiffe://esper.local/") is None
