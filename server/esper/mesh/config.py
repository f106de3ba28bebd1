"""Configuration of one gRPC server process."""

from __future__ import annotations

from dataclasses import dataclass

from esper import checks

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Where and how one Esper gRPC server listens.

    `port` 0 asks the OS for a free port (the bound one is returned by build_server).
    `grace_seconds` is how long in-flight rpcs may finish after a stop is requested.
    `metrics_port` is where Prometheus /metrics is served on the same host: None for
    no endpoint, 0 for a free port.
    """

    service_name: str
    host: str = "127.0.0.1"
    port: int = 0
    grace_seconds: float = 5.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        if not self.service_name:
            raise ValueError("service_name must be set")
        checks.in_range("port", self.port, 0, 65535)
        checks.non_negative("grace_seconds", self.grace_seconds)
        checks.positive("max_message_bytes", self.max_message_bytes)
        if self.metrics_port is not None:
            checks.in_range("metrics_port", self.metrics_port, 0, 65535, note="(or None: no endpoint)")

    @property
    def address(self) -> str:
        """host:port to bind; IPv6 literals are bracketed."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"
