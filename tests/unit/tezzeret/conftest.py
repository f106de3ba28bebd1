"""Fixtures for Tezzeret's unit tests: small IRs, worker configs, a real UrzaHub on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from esper.ir import IRBuilder
from esper.leyline.v1 import blueprint_pb2
from esper.tezzeret.config import TezzeretConfig
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub

START_US = 1_700_000_000_000_000


class ManualClock:
    """Microseconds since the epoch for UrzaHub; advances one microsecond per reading and when told."""

    def __init__(self) -> None:
        self.now_us = START_US

    def __call__(self) -> int:
        self.now_us += 1
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


def mlp_ir(width: int = 16, hidden: int = 32, *, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """x + Linear(GELU(Linear(LayerNorm(x)))) on [width] features."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [width], init_seed=init_seed)
    h = builder.layer_norm(builder.input)
    h = builder.linear(h, hidden)
    h = builder.activation(blueprint_pb2.OP_TYPE_GELU, h)
    h = builder.linear(h, width)
    return builder.build(builder.add_(builder.input, h))


def conv_ir(channels: int = 8, size: int = 6, *, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """x + Conv3x3(GELU(GroupNorm(x))) on [C, H, W] images."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [channels, size, size], init_seed=init_seed)
    h = builder.group_norm(builder.input, num_groups=2)
    h = builder.activation(blueprint_pb2.OP_TYPE_GELU, h)
    h = builder.conv2d(h, channels, 3)
    return builder.build(builder.add_(builder.input, h))


def attention_ir(tokens: int = 4, dim: int = 16, *, init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    """x + SelfAttention(LayerNorm(x)) on [T, D] sequences."""
    builder = IRBuilder(blueprint_pb2.INPUT_KIND_SEQUENCE, [tokens, dim], init_seed=init_seed)
    h = builder.self_attention(builder.layer_norm(builder.input), num_heads=2)
    return builder.build(builder.add_(builder.input, h))


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
