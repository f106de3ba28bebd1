"""A hub on a SQLite file and a folder store in tmp_path, with a clock tests move by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.urza.hub import UrzaHub
from tests.support.urza import FakeClock, make_hub


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'urza.db'}"


@pytest.fixture
def hub(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[UrzaHub]:
    hub = make_hub(database_url, tmp_path / "artifacts", clock)
    yield hub
    hub.close()
