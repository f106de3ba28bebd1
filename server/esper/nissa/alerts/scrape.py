"""Scraping metrics endpoints: which targets there are, and what each one answers.

Targets are the configured static ones plus every server of the mesh file that
lists a "metrics" address (read afresh each cycle; a missing or half-written file
just means no mesh targets this time). A scrape that fails, times out or returns
something that is not the Prometheus text format counts as the target being down.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from esper.nissa.alerts.config import NissaAlertsConfig, ScrapeTarget, metrics_url
from esper.nissa.alerts.series import Labels, labels_of

logger = logging.getLogger(__name__)

# Fetches one URL's body within a timeout (seconds); raises OSError (or ValueError) when it cannot.
Fetch = Callable[[str, float], str]

MAX_EXPOSITION_BYTES = 32 * 1024 * 1024
_MAX_PARALLEL_SCRAPES = 8


@dataclass(frozen=True)
class ScrapedSample:
    """One sample of a scrape: its name (e.g. esper_x_bucket) and labels, job and instance included."""

    name: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class TargetScrape:
    """What one target answered: its samples, or None and why when the scrape failed."""

    target: ScrapeTarget
    samples: tuple[ScrapedSample, ...] | None
    error: str = ""

    @property
    def up(self) -> bool:
        return self.samples is not None


def fetch_metrics(url: str, timeout: float) -> str:
    """GET `url` (a /metrics endpoint) and return its body."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read(MAX_EXPOSITION_BYTES + 1)
    if len(body) > MAX_EXPOSITION_BYTES:
        raise ValueError(f"more than {MAX_EXPOSITION_BYTES} bytes of metrics")
    return body.decode("utf-8")


def current_targets(config: NissaAlertsConfig) -> list[ScrapeTarget]:
    """The static targets, then the mesh file's (each URL once)."""
    targets = list(config.static_targets)
    if config.mesh_file is not None:
        targets += mesh_targets(config.mesh_file)
    unique: dict[tuple[str, str], ScrapeTarget] = {}
    for target in targets:
        unique.setdefault((target.job, target.url), target)
    return list(unique.values())


def mesh_targets(path: Path) -> list[ScrapeTarget]:
    """Every mesh.json entry holding a "metrics" address; nothing when the file is missing or unreadable."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        # `esper up` replaces the file atomically, so this is a real problem, but not one to stop alerting for.
        logger.warning("cannot read the mesh file %s: %s", path, exc)
        return []
    if not isinstance(document, dict):
        logger.warning("the mesh file %s is not an object of addresses", path)
        return []
    targets = []
    for name, entry in document.items():
        address = entry.get("metrics") if isinstance(entry, dict) else None
        if isinstance(address, str) and address:
            targets.append(ScrapeTarget(str(name), metrics_url(address)))
    return targets


def parse_exposition(text: str, target: ScrapeTarget, wanted: Set[str]) -> tuple[ScrapedSample, ...]:
    """The samples of a Prometheus text exposition whose names are in `wanted`, labelled with the target."""
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in wanted:
                continue
            labels = {**sample.labels, "job": target.job, "instance": target.instance}
            samples.append(ScrapedSample(sample.name, labels_of(labels), float(sample.value)))
    return tuple(samples)


class Scraper:
    """Scrapes targets in parallel; logs a target going down or coming back once, not every cycle."""

    def __init__(self, fetch: Fetch, timeout_seconds: float, wanted: Set[str]) -> None:
        self._fetch = fetch
        self._timeout = timeout_seconds
        self._wanted = frozenset(wanted)
        self._down: set[ScrapeTarget] = set()

    def scrape(self, targets: Sequence[ScrapeTarget]) -> list[TargetScrape]:
        self._down &= set(targets)
        if not targets:
            return []
        with ThreadPoolExecutor(max_workers=min(len(targets), _MAX_PARALLEL_SCRAPES)) as pool:
            scrapes = list(pool.map(self._scrape_one, targets))
        for scrape in scrapes:
            self._note(scrape)
        return scrapes

    def _scrape_one(self, target: ScrapeTarget) -> TargetScrape:
        try:
            text = self._fetch(target.url, self._timeout)
            return TargetScrape(target, parse_exposition(text, target, self._wanted))
        except Exception as exc:
            # Whatever one target does (refuse, hang, answer garbage) makes it down, never stops the cycle.
            return TargetScrape(target, None, error=f"{type(exc).__name__}: {exc}")

    def _note(self, scrape: TargetScrape) -> None:
        if not scrape.up and scrape.target not in self._down:
            self._down.add(scrape.target)
            logger.warning("scrape of %s (%s) failed: %s", scrape.target.job, scrape.target.url, scrape.error)
        elif scrape.up and scrape.target in self._down:
            self._down.discard(scrape.target)
            logger.info("scrape of %s (%s) works again", scrape.target.job, scrape.target.url)
