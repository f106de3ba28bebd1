"""Replacing a file whole: a reader, or a crash, sees the old contents or the new ones, never a mix.

The new contents go to a temporary file beside the target (same directory, so the
rename stays on one filesystem and is atomic), which is fsync'd before it is renamed
over the target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_CREATE_ATTEMPTS = 100


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, suffix: str = ".tmp", mode: int = 0o666, sync_directory: bool = False
) -> Iterator[BinaryIO]:
    """A binary handle whose contents become `path` when the block ends without an exception.

    The temporary file is named `.<name>.<random><suffix>` and created with `mode` (less the
    umask). If the block raises, it is removed and `path` is left as it was. With
    `sync_directory` the rename itself is made durable too. The directory must exist.
    """
    path = Path(path)
    fd, tmp = _create_beside(path, suffix, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_directory:
        fsync_directory(path.parent)


def atomic_write(
    path: Path, data: bytes, *, suffix: str = ".tmp", mode: int = 0o666, sync_directory: bool = False
) -> None:
    """Replace `path` with `data` whole (see `atomic_writer`)."""
    with atomic_writer(path, suffix=suffix, mode=mode, sync_directory=sync_directory) as handle:
        handle.write(data)


def fsync_directory(path: Path) -> None:
    """Make a rename in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_beside(path: Path, suffix: str, mode: int) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_CREATE_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
