"""Simic's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from esper import checks
from esper.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

DEFAULT_DATA_DIR = ".esper/simic"
DATABASE_FILE = "simic.db"


@dataclass(frozen=True)
class SimicConfig:
    """Where Simic keeps field reports and how it pages them.

    `database_url` is a SQLAlchemy URL (`sqlite:///PATH` or `postgresql+psycopg://...`);
    empty means the SQLite file `simic.db` under `data_dir`.
    """

    data_dir: str = DEFAULT_DATA_DIR
    database_url: str = ""
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE
    max_reports_per_request: int = 1000

    def __post_init__(self) -> None:
        if not self.data_dir and not self.database_url:
            raise ValueError("data_dir or database_url must be set")
        checks.in_range("default_page_size", self.default_page_size, 1, self.max_page_size)
        checks.positive("max_reports_per_request", self.max_reports_per_request)

    @property
    def resolved_database_url(self) -> str:
        """The database to open: `database_url`, or the SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / DATABASE_FILE).resolve()}"
