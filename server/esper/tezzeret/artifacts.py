"""Artifact bytes -> runnable module: the one place a kernel artifact is loaded.

FAST and STANDARD artifacts are `torch.export` programs (.pt2 archives) and load
with `torch.export.load(...).module()`: a trainable module. AGGRESSIVE artifacts
are AOTInductor packages (.pt2 archives holding a compiled shared library with
the weights baked in) and load with `torch._inductor.aoti_load_package`, wrapped
in `FrozenKernel`: inference only, no parameters, no autograd.

torch.export.load falls back to unrestricted unpickling for payloads an archive
marks as pickled, and for sample inputs that weights_only loading refuses. Those
paths are never reached here: `check_artifact` opens the archive first and
refuses any pickled payload, any custom-object constant, sample inputs that do
not load with weights_only=True, and any entry outside the layout its pipeline
produces (no native code in a program archive, no program in a package).
Callers verify the artifact's SHA-256 against Urza's record before calling this.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import torch
from torch import Tensor, nn

from esper.errors import FailedPrecondition
from esper.leyline.v1 import kernel_pb2
from esper.tezzeret.export_lock import EXPORT_LOCK

_PROGRAM_PIPELINES = (kernel_pb2.COMPILATION_PIPELINE_FAST, kernel_pb2.COMPILATION_PIPELINE_STANDARD)
_ARCHIVE_METADATA = ("archive_format", "archive_version", "byteorder", ".data/")
_PROGRAM_ENTRIES = ("models/", "data/weights/", "data/constants/", "data/sample_inputs/")
_PACKAGE_ENTRIES = ("data/aotinductor/",)
_PAYLOAD_CONFIGS = ("data/weights/", "data/constants/")


class FrozenKernel(nn.Module):
    """An AOTInductor-compiled kernel as a module: fixed weights, no parameters, no autograd."""

    def __init__(self, runner: Any) -> None:
        super().__init__()
        self._runner = runner

    def forward(self, x: Tensor) -> Tensor:
        out = self._runner(x)
        return out[0] if isinstance(out, list | tuple) else out


def load_kernel_module(data: bytes, pipeline: int) -> nn.Module:
    """A runnable module from artifact bytes; FailedPrecondition if they are not a safe artifact."""
    check_artifact(data, pipeline)
    with EXPORT_LOCK:  # torch's deserializer state is process-wide (esper.tezzeret.export_lock)
        if pipeline in _PROGRAM_PIPELINES:
            program = torch.export.load(io.BytesIO(data))
            return program.module()
        from torch._inductor import aoti_load_package

        return FrozenKernel(aoti_load_package(io.BytesIO(data)))


def check_artifact(data: bytes, pipeline: int) -> None:
    """Refuse bytes that are not an archive of `pipeline`'s layout or that would need unpickling."""
    if pipeline not in (*_PROGRAM_PIPELINES, kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE):
        raise FailedPrecondition(f"cannot load an artifact of pipeline {pipeline}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise FailedPrecondition(f"artifact is not a .pt2 archive: {exc}") from None
    with archive:
        entries = _entries_by_relative_path(archive)
        allowed = _PROGRAM_ENTRIES if pipeline in _PROGRAM_PIPELINES else _PACKAGE_ENTRIES
        for path in entries:
            if not path.startswith((*_ARCHIVE_METADATA, *allowed)):
                raise FailedPrecondition(f"artifact holds {path!r}, which a {_name(pipeline)} kernel never has")
        if pipeline in _PROGRAM_PIPELINES:
            _check_program_payloads(archive, entries)


def _entries_by_relative_path(archive: zipfile.ZipFile) -> dict[str, str]:
    """Archive member names without the archive's root folder (its name varies with how it was saved)."""
    entries: dict[str, str] = {}
    for name in archive.namelist():
        _root, sep, rest = name.partition("/")
        if not sep or not rest:
            if name.endswith("/"):
                continue
            raise FailedPrecondition(f"artifact entry {name!r} is outside the archive root")
        if ".." in rest.split("/"):
            raise FailedPrecondition(f"artifact entry {name!r} escapes the archive")
        if not rest.endswith("/"):
            entries[rest] = name
    return entries


def _check_program_payloads(archive: zipfile.ZipFile, entries: dict[str, str]) -> None:
    if not any(path.startswith("models/") and path.endswith(".json") for path in entries):
        raise FailedPrecondition("artifact holds no exported program (models/*.json)")
    for path, name in entries.items():
        if path.startswith(_PAYLOAD_CONFIGS) and path.endswith(".pt"):
            raise FailedPrecondition(f"artifact holds a legacy pickled payload {path!r}")
        if path.startswith(_PAYLOAD_CONFIGS) and path.endswith("_config.json"):
            _check_payload_config(path, archive.read(name))
        if path.startswith("data/sample_inputs/"):
            _check_sample_inputs(path, archive.read(name))


def _check_payload_config(path: str, raw: bytes) -> None:
    try:
        config = json.loads(raw)["config"]
        items = list(config.items())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FailedPrecondition(f"artifact payload config {path!r} is malformed: {exc}") from None
    for fqn, payload in items:
        if not isinstance(payload, dict) or payload.get("use_pickle", True):
            raise FailedPrecondition(f"artifact payload {fqn!r} in {path!r} is pickled; refused")
        name = str(payload.get("path_name", ""))
        if path.startswith("data/constants/") and not name.startswith("tensor_"):
            raise FailedPrecondition(f"artifact constant {fqn!r} is not a plain tensor ({name!r}); refused")


def _check_sample_inputs(path: str, raw: bytes) -> None:
    if not raw:
        return
    try:
        torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as exc:
        raise FailedPrecondition(f"artifact sample inputs {path!r} need unpickling: {exc}") from None


def _name(pipeline: int) -> str:
    return kernel_pb2.CompilationPipeline.Name(pipeline).removeprefix("COMPILATION_PIPELINE_")
