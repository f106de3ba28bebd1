"""mTLS for Esper's gRPC servers and channels, from an identity of the mesh's PKI (esper.trust.pki).

A server requires and verifies a client certificate issued by the mesh's CA, so a
plaintext client, a client without a certificate and one whose certificate another
CA issued are all refused in the handshake: no call of theirs reaches a handler.
The caller's identity is the SPIFFE URI in its certificate (`caller_identity`).
"""

from __future__ import annotations

import grpc

from esper.trust.identity import TRUST_DOMAIN, TlsIdentity, identity_from_uri

_SPIFFE_KEY = "peer_spiffe_id"
_URI_KEY = "peer_uri"


def server_credentials(identity: TlsIdentity) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(identity.key_pem, identity.cert_pem)], root_certificates=identity.ca_pem, require_client_auth=True
    )


def channel_credentials(identity: TlsIdentity) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=identity.ca_pem, private_key=identity.key_pem, certificate_chain=identity.cert_pem
    )


def secure_channel(
    address: str, identity: TlsIdentity, options: list[tuple[str, object]] | None = None
) -> grpc.Channel:
    return grpc.secure_channel(address, channel_credentials(identity), options=options or [])


def caller_identity(
    context: grpc.ServicerContext | grpc.aio.ServicerContext, trust_domain: str = TRUST_DOMAIN
) -> str | None:
    """The identity name of the peer's verified certificate (its SPIFFE URI), or None without one."""
    auth = context.auth_context()
    for key in (_SPIFFE_KEY, _URI_KEY):
        for value in auth.get(key, ()):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            name = identity_from_uri(text, trust_domain)
            if name is not None:
                return name
    return None
