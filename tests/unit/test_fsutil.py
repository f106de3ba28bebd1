"""esper.fsutil: a file is replaced whole or not at all, and no temporary file is left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from esper.fsutil import atomic_write, atomic_writer


def test_a_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old contents that are longer than the new ones")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="torn"), atomic_writer(target, sync_directory=True) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("torn")
    assert target.read_bytes() == b"old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pt"]


def test_the_temporary_file_sits_beside_the_target_with_the_given_suffix(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    with atomic_writer(target, suffix=".partial") as handle:
        handle.write(b"{}")
        [temporary] = [path.name for path in tmp_path.iterdir()]
        assert temporary.startswith(".summary.json.") and temporary.endswith(".partial")
        assert not target.exists()
    assert target.read_bytes() == b"{}"


def test_the_mode_is_applied_less_the_umask(tmp_path: Path) -> None:
    private = tmp_path / "object"
    atomic_write(private, b"x", mode=0o600)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    umask = os.umask(0o022)
    try:
        shared = tmp_path / "shared"
        atomic_write(shared, b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
