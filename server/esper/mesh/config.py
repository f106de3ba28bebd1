"""Configuration of one gRPC server process."""

from __future__ import annotations

from dataclasses import dataclass, field

from esper import checks
from esper.trust.identity import TlsIdentity

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Where and how one Esper gRPC server listens.

    `port` 0 asks the OS for a free port (the bound one is returned by build_server).
    `grace_seconds` is how long in-flight rpcs may finish after a stop is requested.
    `metrics_port` is where Prometheus /metrics is served on the same host: None for
    no endpoint, 0 for a free port. Past `max_concurrent_rpcs` calls in flight (streams
    included) a new call is refused with RESOURCE_EXHAUSTED; None means no bound.
    With `tls` the server speaks mTLS only (esper.mesh.tls) and authorizes every call
    by the role of its caller's certificate; without it, plaintext and no authorization
    (`--insecure`, for development).
    """

    service_name: str
    host: str = "127.0.0.1"
    port: int = 0
    grace_seconds: float = 5.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    metrics_port: int | None = None
    max_concurrent_rpcs: int | None = 256
    tls: TlsIdentity | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.service_name:
            raise ValueError("service_name must be set")
        checks.in_range("port", self.port, 0, 65535)
        checks.non_negative("grace_seconds", self.grace_seconds)
        checks.positive("max_message_bytes", self.max_message_bytes)
        if self.max_concurrent_rpcs is not None:
            checks.positive("max_concurrent_rpcs", self.max_concurrent_rpcs)
        if self.metrics_port is not None:
            checks.in_range("metrics_port", self.metrics_port, 0, 65535, note="(or None: no endpoint)")

    @property
    def address(self) -> str:
        """host:port to bind; IPv6 literals are bracketed."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"
