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


def test_any_sample_inputs_are_refused_even_plain_tensors(program_bytes: bytes) -> None:
    # A .pt is a pickle, and Tezzeret writes the sample inputs empty.
    def tensors(name: str, content: bytes) -> bytes:
        if "/data/sample_inputs/" in name:
            buffer = io.BytesIO()
            torch.save(((torch.zeros(2, 8),), {}), buffer)
            return buffer.getvalue()
        return content

    with pytest.raises(FailedPrecondition, match="sample inputs") as caught:
        check_artifact(_rewrite(program_bytes, tensors), STANDARD)
    assert caught.value.reason == "UNSAFE_ARTIFACT"


def _with_duplicate_config(data: bytes, *, pickled_first: bool) -> bytes:
    """The archive with its weights config written twice: once as is, once marking every payload pickled."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if not name.endswith("_weights_config.json"):
                target.writestr(name, content)
                continue
            config = json.loads(content)
            for payload in config["config"].values():
                payload["use_pickle"] = True
            pickled = json.dumps(config).encode()
            first, second = (pickled, content) if pickled_first else (content, pickled)
            target.writestr(name, first)
            with pytest.warns(UserWarning, match="Duplicate name"):
                target.writestr(name, second)
    return out.getvalue()


@pytest.mark.parametrize("pickled_first", [True, False])
def test_a_duplicated_config_entry_is_refused_in_either_order(program_bytes: bytes, pickled_first: bool) -> None:
    crafted = _with_duplicate_config(program_bytes, pickled_first=pickled_first)
    with pytest.raises(FailedPrecondition, match="twice") as caught:
        load_kernel_module(crafted, FAST)
    assert caught.value.reason == "UNSAFE_ARTIFACT"


def test_names_that_differ_only_in_case_are_refused(program_bytes: bytes) -> None:
    def upper(name: str) -> str:
        root, _, rest = name.partition("/")
        return f"{root}/{rest.upper()}"

    crafted = _rewrite(program_bytes, lambda name, content: content)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(crafted)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        weights = next(name for name in source.namelist() if name.endswith("_weights_config.json"))
        target.writestr(upper(weights), source.read(weights))
    with pytest.raises(FailedPrecondition, match="twice"):
        check_artifact(out.getvalue(), FAST)


def test_an_unexpected_entry_is_refused_even_in_an_allowed_folder(program_bytes: bytes) -> None:
    extra = _rewrite(program_bytes, lambda name, content: content, {"data/weights/payload.pkl": b"x"})
    with pytest.raises(FailedPrecondition, match="never has"):
        check_artifact(extra, FAST)


def test_a_comment_or_trailing_bytes_are_refused(program_bytes: bytes) -> None:
    with pytest.raises(FailedPrecondition, match="directory record"):
        check_artifact(program_bytes + b"junk", FAST)
    out = io.BytesIO(program_bytes)
    with zipfile.ZipFile(out, "a") as archive:
        archive.comment = b"hidden"
    with pytest.raises(FailedPrecondition, match="directory record"):
        check_artifact(out.getvalue(), FAST)


def test_a_compressed_entry_is_refused(program_bytes: bytes) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(program_bytes)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(FailedPrecondition, match="compressed"):
        check_artifact(out.getvalue(), FAST)


def test_a_payload_naming_a_missing_entry_is_refused(program_bytes: bytes) -> None:
    dropped = _rewrite(program_bytes, lambda name, content: None if name.endswith("/weight_0") else content)
    with pytest.raises(FailedPrecondition, match="names no entry"):
        check_artifact(dropped, FAST)


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
