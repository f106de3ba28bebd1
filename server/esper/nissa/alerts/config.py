"""Configuration of Nissa's alert evaluation: what to scrape, how often, and per-rule `for` overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from esper import checks
from esper.errors import InvalidArgument
from esper.nissa.alerts.rules import RULES_BY_NAME

DEFAULT_EVALUATION_INTERVAL_SECONDS = 5.0
DEFAULT_SCRAPE_TIMEOUT_SECONDS = 2.0
DEFAULT_MAX_RESOLVED = 500


@dataclass(frozen=True)
class ScrapeTarget:
    """One metrics endpoint: the job (subsystem) name its samples are labelled with, and its URL."""

    job: str
    url: str

    @property
    def instance(self) -> str:
        """host:port, as Prometheus labels a target's samples."""
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class NissaAlertsConfig:
    """How Nissa evaluates alerts.

    Targets are the static ones plus, when `mesh_file` is set, every server of that
    mesh.json with a "metrics" address (the file is re-read every cycle, so servers
    that come and go are followed). `for_overrides` replaces a rule's `for` (seconds).
    """

    evaluation_interval_seconds: float = DEFAULT_EVALUATION_INTERVAL_SECONDS
    scrape_timeout_seconds: float = DEFAULT_SCRAPE_TIMEOUT_SECONDS
    static_targets: Sequence[ScrapeTarget] = ()
    mesh_file: Path | None = None
    for_overrides: Mapping[str, float] = field(default_factory=dict)
    max_resolved: int = DEFAULT_MAX_RESOLVED

    def __post_init__(self) -> None:
        checks.positive("evaluation_interval_seconds", self.evaluation_interval_seconds)
        checks.positive("scrape_timeout_seconds", self.scrape_timeout_seconds)
        checks.positive("max_resolved", self.max_resolved)
        for target in self.static_targets:
            _check_target(target)
        for name, seconds in self.for_overrides.items():
            _check_rule_name(name, "for_overrides")
            checks.non_negative(f"for_overrides.{name}", seconds)
        object.__setattr__(self, "static_targets", tuple(self.static_targets))
        object.__setattr__(self, "for_overrides", MappingProxyType(dict(self.for_overrides)))


def parse_target(text: str) -> ScrapeTarget:
    """`"tamiyo=http://127.0.0.1:9455/metrics"` -> ScrapeTarget; a bare host:port gets http:// and /metrics."""
    job, sep, url = text.partition("=")
    if not sep or not job.strip() or not url.strip():
        raise InvalidArgument.for_field("static_targets", f"expected NAME=URL, got {text!r}")
    target = ScrapeTarget(job.strip(), metrics_url(url.strip()))
    _check_target(target)
    return target


def metrics_url(address: str) -> str:
    """A metrics address as a URL: "127.0.0.1:9455" -> "http://127.0.0.1:9455/metrics"."""
    if "://" in address:
        return address
    return f"http://{address}/metrics"


def parse_for_override(text: str) -> tuple[str, float]:
    """`"tamiyo_unavailable=5"` -> ("tamiyo_unavailable", 5.0).

    An unknown rule name is an InvalidArgument naming the known rules.
    """
    name, sep, seconds_text = text.partition("=")
    name = name.strip()
    if not sep:
        raise InvalidArgument.for_field("for_overrides", f"expected RULE=SECONDS, got {text!r}")
    _check_rule_name(name, "for_overrides")
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise InvalidArgument.for_field(
            f"for_overrides.{name}", f"expected a number of seconds, got {seconds_text!r}"
        ) from None
    checks.non_negative(f"for_overrides.{name}", seconds)
    return name, seconds


def _check_rule_name(name: str, field_path: str) -> None:
    if name not in RULES_BY_NAME:
        raise InvalidArgument.for_field(
            field_path, f"no alert rule named {name!r} (rules: {', '.join(sorted(RULES_BY_NAME))})"
        )


def _check_target(target: ScrapeTarget) -> None:
    parts = urlsplit(target.url)
    if not target.job:
        raise InvalidArgument.for_field("static_targets", f"a target needs a job name: {target.url!r}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument.for_field(
            "static_targets",
            f"{target.job}: expected an http(s) URL such as http://host:port/metrics, got {target.url!r}",
        )
