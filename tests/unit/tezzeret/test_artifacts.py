"""The artifact loader refuses anything that would need unpickling or that its pipeline never makes."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Callable

import pytest
import torch
from torch import nn

from esper.errors import FailedPrecondition
from esper.tezzeret import passes
from esper.tezzeret.artifacts import check_artifact, load_kernel_module
from esper.tezzeret.config import AGGRESSIVE, FAST, STANDARD
from tests.unit.tezzeret.conftest import ConfigFactory


class Payload:
    """Any class: weights_only loading refuses to build it."""


@pytest.fixture
def program_bytes(make_config: ConfigFactory) -> bytes:
    module = nn.Sequential(nn.Linear(8, 8), nn.GELU())
    return passes.save_program(passes.export_program(module, torch.randn(4, 8), make_config()))


def _rewrite(data: bytes, change: Callable[[str, bytes], bytes | None], extra: dict[str, bytes] | None = None) -> bytes:
    """A copy of the archive with each member passed through `change` (None drops it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        root = source.namelist()[0].split("/")[0]
        for name in source.namelist():
            content = change(name, source.read(name))
            if content is not None:
                target.writestr(name, content)
        for name, content in (extra or {}).items():
            target.writestr(f"{root}/{name}", content)
    return out.getvalue()


def test_a_program_artifact_loads_for_fast_and_standard(program_bytes: bytes) -> None:
    for pipeline in (FAST, STANDARD):
        module = load_kernel_module(program_bytes, pipeline)
        assert module(torch.randn(3, 8)).shape == (3, 8)


def test_a_pickled_weight_is_refused(program_bytes: bytes) -> None:
    def mark_pickled(name: str, content: bytes) -> bytes:
        if name.endswith("_weights_config.json"):
            config = json.loads(content)
            for payload in config["config"].values():
                payload["use_pickle"] = True
            return json.dumps(config).encode()
        return content

    with pytest.raises(FailedPrecondition, match="pickled"):
        load_kernel_module(_rewrite(program_bytes, mark_pickled), FAST)


def test_sample_inputs_that_need_unpickling_are_refused(program_bytes: bytes) -> None:
    def poison(name: str, content: bytes) -> bytes:
        if "/data/sample_inputs/" in name:
            buffer = io.BytesIO()
            pickle.dump(((Payload(),), {}), buffer)
            return buffer.getvalue()
        return content

    with pytest.raises(FailedPrecondition, match="sample inputs"):
        check_artifact(_rewrite(program_bytes, poison), FAST)


def test_sample_inputs_of_plain_tensors_are_accepted(program_bytes: bytes) -> None:
    def tensors(name: str, content: bytes) -> bytes:
        if "/data/sample_inputs/" in name:
            buffer = io.BytesIO()
            torch.save(((torch.zeros(2, 8),), {}), buffer)
            return buffer.getvalue()
        return content

    check_artifact(_rewrite(program_bytes, tensors), STANDARD)


def test_native_code_in_a_program_artifact_is_refused(program_bytes: bytes) -> None:
    native = {"data/aotinductor/model/x.so": b"\x7fELF"}
    smuggled = _rewrite(program_bytes, lambda name, content: content, native)
    with pytest.raises(FailedPrecondition, match="never has"):
        check_artifact(smuggled, STANDARD)


def test_a_program_is_not_an_aggressive_package(program_bytes: bytes) -> None:
    with pytest.raises(FailedPrecondition, match="AGGRESSIVE kernel never has"):
        load_kernel_module(program_bytes, AGGRESSIVE)


def test_an_archive_without_a_program_is_refused(program_bytes: bytes) -> None:
    without = _rewrite(program_bytes, lambda name, content: None if "/models/" in name else content)
    with pytest.raises(FailedPrecondition, match="no exported program"):
        check_artifact(without, FAST)


def test_bytes_that_are_not_an_archive_are_refused() -> None:
    with pytest.raises(FailedPrecondition, match=r"not a \.pt2 archive"):
        load_kernel_module(b"definitely not a zip", FAST)


def test_an_entry_escaping_the_archive_is_refused(program_bytes: bytes) -> None:
    escaping = _rewrite(program_bytes, lambda name, content: content, {"../evil": b"x"})
    with pytest.raises(FailedPrecondition, match="escapes"):
        check_artifact(escaping, FAST)
