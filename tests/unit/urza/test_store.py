"""The folder object store."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.urza.config import UrzaConfig
from esper.urza.store import FolderObjectStore, open_object_store
from tests.support.store_contract import check_object_store_contract


def test_folder_store_meets_the_contract(tmp_path: Path) -> None:
    check_object_store_contract(FolderObjectStore(tmp_path / "objects"))


def test_a_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FolderObjectStore(tmp_path)
    store.put("kernels/a.pt2", b"one")
    store.put("kernels/a.pt2", b"two")
    assert sorted(path.name for path in (tmp_path / "kernels").iterdir()) == ["a.pt2"]


def test_a_failed_put_keeps_the_old_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FolderObjectStore(tmp_path)
    store.put("kernels/a.pt2", b"old")

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("esper.fsutil.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put("kernels/a.pt2", b"new")
    assert store.get("kernels/a.pt2") == b"old"
    assert sorted(path.name for path in (tmp_path / "kernels").iterdir()) == ["a.pt2"]


def test_open_object_store_picks_a_folder_for_a_path(tmp_path: Path) -> None:
    store = open_object_store(UrzaConfig(data_dir=str(tmp_path)))
    assert isinstance(store, FolderObjectStore)
    assert store.root == tmp_path / "artifacts"
