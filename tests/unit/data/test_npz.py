"""npz datasets: layouts accepted, and every refusal names what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from esper.data import load_dataset
from esper.errors import InvalidArgument
from esper.leyline.v1 import blueprint_pb2


def _write(tmp_path: Path, **arrays: Any) -> str:
    path = tmp_path / "set.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def _valid(rows: int = 40, test_rows: int = 20, shape: tuple[int, ...] = (5,)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(rows, *shape)).astype(np.float32),
        "y_train": np.arange(rows) % 3,
        "x_test": rng.normal(size=(test_rows, *shape)).astype(np.float32),
        "y_test": np.arange(test_rows) % 3,
    }


def _refusal(spec: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        load_dataset(spec, seed=0)
    return info.value


def test_features_load_and_are_standardized(tmp_path: Path, no_network: None) -> None:
    data = load_dataset(_write(tmp_path, **_valid()), seed=0)
    assert data.input_kind == blueprint_pb2.INPUT_KIND_FEATURES
    assert data.input_shape == (5,) and data.num_classes == 3
    assert data.y_train.shape[0] + data.y_val.shape[0] == 40 and data.y_test.shape[0] == 20
    assert torch.allclose(data.x_train.mean(0), torch.zeros(5), atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "kind", "expected"),
    [
        ((6, 6), blueprint_pb2.INPUT_KIND_IMAGE, (1, 6, 6)),
        ((3, 8, 8), blueprint_pb2.INPUT_KIND_IMAGE, (3, 8, 8)),
        ((2, 2, 2, 2), blueprint_pb2.INPUT_KIND_FEATURES, (16,)),
        ((), blueprint_pb2.INPUT_KIND_FEATURES, (1,)),
    ],
)
def test_layouts(tmp_path: Path, shape: tuple[int, ...], kind: int, expected: tuple[int, ...]) -> None:
    data = load_dataset(_write(tmp_path, **_valid(shape=shape)), seed=0)
    assert data.input_kind == kind and data.input_shape == expected
    assert tuple(data.x_test.shape[1:]) == expected


def test_uint8_images_scaled_to_unit_range_and_float_labels_accepted(tmp_path: Path) -> None:
    arrays = _valid(shape=(4, 4))
    arrays["x_train"] = np.full((40, 4, 4), 255, dtype=np.uint8)
    arrays["x_test"] = np.zeros((20, 4, 4), dtype=np.uint8)
    arrays["y_train"] = arrays["y_train"].astype(np.float64)
    data = load_dataset(_write(tmp_path, **arrays), seed=0)
    assert float(data.x_train.max()) == 1.0 and float(data.x_test.max()) == 0.0
    assert data.y_train.dtype == torch.int64


def test_validation_rows_come_from_training_rows_only(tmp_path: Path) -> None:
    # Each image is filled with its row id, so rows can be traced through the split.
    train_ids, test_ids = np.arange(60), 1000 + np.arange(30)
    arrays = {
        "x_train": np.broadcast_to(train_ids[:, None, None], (60, 4, 4)).astype(np.float32),
        "y_train": train_ids % 4,
        "x_test": np.broadcast_to(test_ids[:, None, None], (30, 4, 4)).astype(np.float32),
        "y_test": test_ids % 4,
    }
    data = load_dataset(_write(tmp_path, **arrays), seed=5, validation_fraction=0.25)
    parts = ("x_train", "x_val", "x_test")
    ids = {part: set(getattr(data, part)[:, 0, 0, 0].long().tolist()) for part in parts}
    assert ids["x_test"] == set(test_ids.tolist())
    assert not ids["x_val"] & ids["x_test"]
    assert ids["x_val"] | ids["x_train"] == set(train_ids.tolist())
    assert not ids["x_val"] & ids["x_train"]
    assert len(ids["x_val"]) == 16  # 4 per class of 15


@pytest.mark.parametrize("missing", ["x_train", "y_train", "x_test", "y_test"])
def test_missing_array_is_named(tmp_path: Path, missing: str) -> None:
    arrays = _valid()
    del arrays[missing]
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == f"npz.{missing}"
    assert f"{missing!r} is missing" in str(error)


def test_mismatched_lengths_name_both_arrays(tmp_path: Path) -> None:
    arrays = _valid()
    arrays["y_test"] = arrays["y_test"][:-3]
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == "npz.y_test"
    assert "x_test has 20 rows" in str(error) and "y_test has 17" in str(error)


def test_non_integer_labels_refused(tmp_path: Path) -> None:
    arrays = _valid()
    arrays["y_train"] = arrays["y_train"] + 0.5
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == "npz.y_train"
    assert "must be integers" in str(error)


def test_string_labels_refused(tmp_path: Path) -> None:
    arrays = _valid()
    arrays["y_test"] = np.array(["cat"] * 20)
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == "npz.y_test" and "must be integers" in str(error)


def test_negative_labels_refused(tmp_path: Path) -> None:
    arrays = _valid()
    arrays["y_test"] = arrays["y_test"] - 1
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == "npz.y_test"
    assert "from 0" in str(error) and "-1" in str(error)


@pytest.mark.parametrize(("array", "value"), [("x_train", np.inf), ("x_test", np.nan)])
def test_non_finite_features_name_the_array(tmp_path: Path, array: str, value: float) -> None:
    arrays = _valid()
    arrays[array][7, 2] = value
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == f"npz.{array}"
    assert "NaN or Inf" in str(error) and "row 7" in str(error)


@pytest.mark.parametrize("array", ["x_train", "x_test"])
def test_empty_arrays_refused(tmp_path: Path, array: str) -> None:
    arrays = _valid()
    label = "y" + array[1:]
    arrays[array] = arrays[array][:0]
    arrays[label] = arrays[label][:0]
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == f"npz.{array}" and "empty" in str(error)


def test_mismatched_sample_shapes_refused(tmp_path: Path) -> None:
    arrays = _valid()
    arrays["x_test"] = np.zeros((20, 6), dtype=np.float32)
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == "npz.x_test" and "[5]" in str(error) and "[6]" in str(error)


def test_object_arrays_are_not_unpickled(tmp_path: Path) -> None:
    arrays: dict[str, Any] = _valid()
    arrays["x_train"] = np.array([{"a": 1}] * 40, dtype=object)
    error = _refusal(_write(tmp_path, **arrays))
    assert error.violations[0].field == "npz.x_train" and "pickle" in str(error)


def test_missing_file_and_non_npz_file(tmp_path: Path) -> None:
    error = _refusal(f"npz:{tmp_path / 'absent.npz'}")
    assert error.violations[0].field == "dataset" and "does not exist" in str(error)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    assert "not an .npz archive" in str(_refusal(f"npz:{single}"))
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    assert "cannot read npz file" in str(_refusal(f"npz:{junk}"))
    assert _refusal("npz:").violations[0].field == "dataset"
