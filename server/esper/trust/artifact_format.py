"""The format check every kernel artifact passes before anything loads it (torch-free).

A `.pt2` is a zip archive, and two readers see it: this check (Python's `zipfile`)
and torch's loader (miniz). Wherever they could disagree, the archive is refused,
so what is checked is what torch reads:

- one entry per name, case-insensitively too (for a repeated name `zipfile` keeps
  the last entry and miniz finds the first);
- the archive ends with its end-of-central-directory record and has no comment
  (no second directory hidden in a comment), and every entry is stored, not
  compressed (torch stores; no decompression bombs);
- one root folder, no `..`, backslash, control character or absolute name;
- every entry on the allow-list of the layout its pipeline produces (no native
  library in a program archive, no program in an AOTInductor package);
- in a program archive: every payload config says `use_pickle: false`, constants
  are plain tensors, every payload it names is present, and the sample inputs
  (a pickle when present) are empty, as Tezzeret writes them.

AGGRESSIVE packages carry a native library that is loaded and run by design:
no format check makes native code safe. What protects a process from one is the
Ed25519 signature of the compile worker (esper.trust.kernel_signing), verified
before this check, and Urabrask running it first in a resource-limited sandbox.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from collections.abc import Mapping

from esper.errors import FailedPrecondition
from esper.leyline.v1 import kernel_pb2

PROGRAM_PIPELINES = (kernel_pb2.COMPILATION_PIPELINE_FAST, kernel_pb2.COMPILATION_PIPELINE_STANDARD)
MAX_ENTRIES = 4096
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22

_METADATA = r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
_PROGRAM_LAYOUT = re.compile(
    rf"(?:{_METADATA}"
    r"|models/[A-Za-z0-9_]{1,64}\.json"
    r"|data/weights/[A-Za-z0-9_]{1,64}_weights_config\.json"
    r"|data/weights/weight_[0-9]{1,9}"
    r"|data/constants/[A-Za-z0-9_]{1,64}_constants_config\.json"
    r"|data/constants/tensor_[0-9]{1,9}"
    r"|data/sample_inputs/[A-Za-z0-9_]{1,64}\.pt)"
)
_PACKAGE_LAYOUT = re.compile(
    rf"(?:{_METADATA}"
    r"|data/aotinductor/[A-Za-z0-9_]{1,64}/[A-Za-z0-9_]{1,128}"
    r"\.(?:wrapper\.cpp|kernel\.cpp|wrapper_metadata\.json|kernel_metadata\.json|wrapper\.so))"
)
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\:]")


class UnsafeArtifact(FailedPrecondition):
    """Bytes that are not an artifact of the expected layout, or that something would have to unpickle."""

    reason = "UNSAFE_ARTIFACT"


def check_artifact_format(data: bytes, pipeline: int) -> None:
    """Refuse bytes that are not a clean archive of `pipeline`'s layout; see the module docstring."""
    if pipeline not in (*PROGRAM_PIPELINES, kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE):
        raise UnsafeArtifact(f"cannot check an artifact of pipeline {pipeline}")
    _check_trailer(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, struct.error) as exc:
        raise UnsafeArtifact(f"artifact is not a .pt2 archive: {exc}") from None
    with archive:
        entries = _entries(archive)
        layout = _PROGRAM_LAYOUT if pipeline in PROGRAM_PIPELINES else _PACKAGE_LAYOUT
        for path in entries:
            if not layout.fullmatch(path):
                raise UnsafeArtifact(f"artifact holds {_shown(path)}, which a {_name(pipeline)} kernel never has")
        if pipeline in PROGRAM_PIPELINES:
            _check_program(archive, entries)
        else:
            libraries = [path for path in entries if path.endswith(".so")]
            if len(libraries) != 1:
                raise UnsafeArtifact(f"an AGGRESSIVE package holds one native library, this one {len(libraries)}")


def _check_trailer(data: bytes) -> None:
    """The archive ends with its directory record and an empty comment.

    Both readers then take that record (zipfile looks at the last 22 bytes first, miniz
    scans backwards from the end), so no second directory can hide in a comment.
    """
    if len(data) < _EOCD_SIZE or data[-_EOCD_SIZE : -_EOCD_SIZE + 4] != _EOCD or data[-2:] != b"\x00\x00":
        raise UnsafeArtifact(
            "artifact is not a .pt2 archive ending with its zip directory record (no comment, no trailing bytes)"
        )


def _entries(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Entries by path below the archive's one root folder, every name checked."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UnsafeArtifact(f"artifact holds {len(infos)} entries; at most {MAX_ENTRIES}")
    seen: set[str] = set()
    roots: set[str] = set()
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        folded = name.casefold()
        if folded in seen:
            raise UnsafeArtifact(f"artifact holds entry {_shown(name)} twice (names compared without case)")
        seen.add(folded)
        if _UNSAFE_CHARACTERS.search(name) or name.startswith("/") or not name:
            raise UnsafeArtifact(f"artifact entry {_shown(name)} has an unsafe name")
        root, sep, rest = name.partition("/")
        if not sep or not rest or not root:
            raise UnsafeArtifact(f"artifact entry {_shown(name)} is outside the archive root")
        if any(part in ("", ".", "..") for part in rest.rstrip("/").split("/")):
            raise UnsafeArtifact(f"artifact entry {_shown(name)} escapes the archive")
        roots.add(root)
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafeArtifact(f"artifact entry {_shown(name)} is compressed; kernel archives store entries")
        total += info.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise UnsafeArtifact(f"artifact entries add up to more than {MAX_UNCOMPRESSED_BYTES} bytes")
        if not name.endswith("/"):
            entries[rest] = info
    if len(roots) > 1:
        raise UnsafeArtifact(f"artifact has {len(roots)} root folders; an archive has one")
    return entries


def _check_program(archive: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo]) -> None:
    if not any(path.startswith("models/") for path in entries):
        raise UnsafeArtifact("artifact holds no exported program (models/*.json)")
    for path, info in entries.items():
        if path.endswith("_config.json"):
            _check_payload_config(path, archive.read(info), entries)
        elif path.startswith("data/sample_inputs/") and info.file_size:
            raise UnsafeArtifact(f"artifact sample inputs {_shown(path)} are not empty; loading them would unpickle")


def _check_payload_config(path: str, raw: bytes, entries: Mapping[str, zipfile.ZipInfo]) -> None:
    try:
        config = json.loads(raw)["config"]
        items = list(config.items())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnsafeArtifact(f"artifact payload config {_shown(path)} is malformed: {exc}") from None
    folder = path.rsplit("/", 1)[0]
    for fqn, payload in items:
        if not isinstance(payload, dict) or payload.get("use_pickle", True) is not False:
            raise UnsafeArtifact(f"artifact payload {_shown(fqn)} in {_shown(path)} is pickled; refused")
        name = payload.get("path_name")
        if not isinstance(name, str) or f"{folder}/{name}" not in entries:
            raise UnsafeArtifact(f"artifact payload {_shown(fqn)} in {_shown(path)} names no entry of the archive")
        if folder == "data/constants" and not name.startswith("tensor_"):
            raise UnsafeArtifact(f"artifact constant {_shown(fqn)} is not a plain tensor ({_shown(name)}); refused")


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 120 else repr(value[:120]) + "..."


def _name(pipeline: int) -> str:
    return kernel_pb2.CompilationPipeline.Name(pipeline).removeprefix("COMPILATION_PIPELINE_")
