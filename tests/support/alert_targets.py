"""Stand-ins for metrics endpoints in unit tests: a fetch function over per-URL registries, and a clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest


@dataclass
class FakeTargets:
    """URL -> registry (or raw text); a URL that is not served refuses the connection like a stopped server."""

    served: dict[str, CollectorRegistry | str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def fetch(self, url: str, timeout: float) -> str:
        self.fetched.append(url)
        found = self.served.get(url)
        if found is None:
            raise ConnectionRefusedError(111, "Connection refused")
        if isinstance(found, str):
            return found
        return generate_latest(found).decode("utf-8")


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
