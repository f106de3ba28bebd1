"""What every ObjectStore must do; run against the folder store here and real S3 in integration."""

from __future__ import annotations

import pytest

from esper.urza.store import ObjectMissing, ObjectStore


def check_object_store_contract(store: ObjectStore) -> None:
    key = "kernels/abc-cpu-fast-01234567/deadbeef.pt2"
    assert not store.exists(key)
    with pytest.raises(ObjectMissing):
        store.get(key)
    with pytest.raises(ObjectMissing):
        store.size(key)
    store.put(key, b"first")
    assert store.exists(key)
    assert store.get(key) == b"first"
    assert store.size(key) == 5
    store.put(key, b"second version")
    assert store.get(key) == b"second version"
    big = bytes(range(256)) * 8192  # 2 MiB
    store.put("kernels/big.pt2", big)
    assert store.get("kernels/big.pt2") == big
    store.delete(key)
    store.delete(key)  # deleting twice is fine
    assert not store.exists(key)
    for bad in ("../escape", "/absolute", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            store.put(bad, b"x")
