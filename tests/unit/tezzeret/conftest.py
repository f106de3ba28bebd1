"""Fixtures for Tezzeret's unit tests: small IRs, worker configs, a real UrzaHub on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from esper.tezzeret.config import TezzeretConfig
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub
from tests.support.tezzeret import ManualClock

ConfigFactory = Callable[..., TezzeretConfig]


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigFactory:
    """`make_config(**overrides)`: a worker config with its WAL and work folders under tmp_path."""

    def make(**overrides: Any) -> TezzeretConfig:
        settings: dict[str, Any] = {
            "worker_id": "tezzeret-test",
            "wal_dir": tmp_path / "wal",
            "work_dir": tmp_path / "work",
            "hardware_target": "cpu_test",
            "poll_interval_seconds": 0.01,
        }
        settings.update(overrides)
        return TezzeretConfig(**settings)

    return make


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def hub(tmp_path: Path, clock: ManualClock) -> Iterator[UrzaHub]:
    """A real UrzaHub on a SQLite file and a folder store; compile jobs get three attempts."""
    hub = UrzaHub.open(UrzaConfig(data_dir=str(tmp_path / "urza"), compile_max_attempts=3), clock=clock)
    yield hub
    hub.close()
