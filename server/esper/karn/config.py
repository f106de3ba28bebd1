"""Karn's configuration."""

from __future__ import annotations

from dataclasses import dataclass

from esper import checks
from esper.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


@dataclass(frozen=True)
class KarnConfig:
    """How Karn serves its catalog and keeps field reports.

    `max_field_reports` bounds the in-memory report log: past it the oldest reports
    (and their ids, for deduplication) are forgotten first.
    """

    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE
    default_query_limit: int = 100
    max_query_limit: int = 1000
    max_field_reports: int = 10_000
    max_reports_per_request: int = 1000

    def __post_init__(self) -> None:
        checks.in_range("default_page_size", self.default_page_size, 1, self.max_page_size)
        checks.in_range("default_query_limit", self.default_query_limit, 1, self.max_query_limit)
        checks.positive("max_field_reports", self.max_field_reports)
        checks.positive("max_reports_per_request", self.max_reports_per_request)
