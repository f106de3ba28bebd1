"""Compiling in a child of the fork server: the same artifact as compiling here, and this process untouched."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.forkserver import ForkServer
from esper.leyline.v1 import blueprint_pb2
from esper.tezzeret.config import FAST, STANDARD
from esper.tezzeret.forked import ForkedCompiler, compile_server
from esper.tezzeret.pipelines import CompileError, CompileInterrupted, compile_blueprint
from tests.support.kernels import residual_ir
from tests.unit.tezzeret.conftest import ConfigFactory


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    with compile_server("test-compile-forks") as forks:
        yield forks


@pytest.mark.parametrize("pipeline", [FAST, STANDARD])
def test_a_child_compiles_the_artifact_this_process_would(
    server: ForkServer, make_config: ConfigFactory, tmp_path: Path, pipeline: int
) -> None:
    config = make_config()
    ir = residual_ir()
    forked = ForkedCompiler(server, tmp_path / "scratch")(ir, pipeline, config, blueprint_id="bp-1", toolchain="t1")
    here = compile_blueprint(ir, pipeline, config, blueprint_id="bp-1", toolchain="t1")
    assert hashlib.sha256(forked.artifact).hexdigest() == hashlib.sha256(here.artifact).hexdigest()
    assert forked.kernel.kernel_id == here.kernel.kernel_id and forked.kernel.parameter_count > 0
    pid = int(forked.notes[-1].rsplit(" ", 1)[-1])
    assert pid != os.getpid()
    assert list((tmp_path / "scratch").iterdir()) == [], "request folders are removed"


def test_an_invalid_ir_fails_in_the_child_and_is_not_retryable(
    server: ForkServer, make_config: ConfigFactory, tmp_path: Path
) -> None:
    broken = blueprint_pb2.BlueprintIR()
    broken.CopyFrom(residual_ir())
    del broken.nodes[1:]
    with pytest.raises(CompileError) as caught:
        ForkedCompiler(server, tmp_path)(broken, FAST, make_config())
    assert not caught.value.retryable and "invalid IR" in str(caught.value)


def test_a_compile_cut_short_by_closing_the_server_is_an_interruption(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    closed = compile_server("closed-forks")
    closed.close()
    with pytest.raises(CompileInterrupted):
        ForkedCompiler(closed, tmp_path)(residual_ir(), FAST, make_config())


def test_the_toolchain_hash_from_a_child_is_this_process_s(
    server: ForkServer, make_config: ConfigFactory, tmp_path: Path
) -> None:
    from esper.tezzeret.toolchain import toolchain_hash

    config = make_config()
    assert ForkedCompiler(server, tmp_path).toolchain_hash(config) == toolchain_hash(config)
