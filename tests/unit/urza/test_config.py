"""UrzaConfig defaults and validation."""

from __future__ import annotations

import pytest

from esper.leyline.v1 import kernel_pb2
from esper.urza.config import UrzaConfig


def test_defaults_live_under_the_data_dir() -> None:
    config = UrzaConfig(data_dir="/srv/urza")
    assert config.database_url == "sqlite:////srv/urza/urza.db"
    assert config.store == "/srv/urza/artifacts"
    assert not config.uses_s3
    assert config.default_pipelines == (
        kernel_pb2.COMPILATION_PIPELINE_FAST,
        kernel_pb2.COMPILATION_PIPELINE_STANDARD,
    )
    assert (config.compile_max_attempts, config.default_lease_seconds, config.chunk_size) == (3, 300, 1 << 20)


def test_explicit_locations_win() -> None:
    config = UrzaConfig(database_url="postgresql+psycopg://u@h/db", store="s3://bucket/prefix")
    assert config.database_url == "postgresql+psycopg://u@h/db"
    assert config.uses_s3


@pytest.mark.parametrize(
    "fields",
    [
        {"compile_max_attempts": 0},
        {"default_lease_seconds": 0},
        {"default_lease_seconds": 3601},
        {"chunk_size": 1024},
        {"default_pipelines": ()},
        {"default_pipelines": (kernel_pb2.COMPILATION_PIPELINE_UNSPECIFIED,)},
        {"store": "s3://"},
    ],
)
def test_invalid_settings_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        UrzaConfig(**fields)  # type: ignore[arg-type]
