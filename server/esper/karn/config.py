"""Karn's configuration."""

from __future__ import annotations

from dataclasses import dataclass

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
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ValueError("need 1 <= default_page_size <= max_page_size")
        if not 1 <= self.default_query_limit <= self.max_query_limit:
            raise ValueError("need 1 <= default_query_limit <= max_query_limit")
        if self.max_field_reports < 1 or self.max_reports_per_request < 1:
            raise ValueError("max_field_reports and max_reports_per_request must be >= 1")
