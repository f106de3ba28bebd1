"""Datasets from a user's .npz file, checked before any training starts."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from esper.data.sources import RawSplit
from esper.data.splits import FloatArray, IntArray
from esper.errors import InvalidArgument
from esper.leyline.v1 import blueprint_pb2

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def _refuse(array: str, description: str) -> InvalidArgument:
    return InvalidArgument.for_field(f"npz.{array}", description)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InvalidArgument.for_field("dataset", f"npz file {str(path)!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InvalidArgument.for_field(
                "dataset", f"{str(path)!r} holds a single array, not an .npz archive of named arrays"
            )
        with loaded as archive:
            present = set(archive.files)
            for name in ARRAY_NAMES:
                if name not in present:
                    raise _refuse(
                        name,
                        f"array {name!r} is missing from {str(path)!r} "
                        f"(it holds: {', '.join(sorted(present)) or 'nothing'}; "
                        f"needs {', '.join(ARRAY_NAMES)})",
                    )
            arrays: dict[str, np.ndarray] = {}
            for name in ARRAY_NAMES:
                try:
                    arrays[name] = archive[name]
                except ValueError as exc:  # object arrays need pickle, which is refused
                    raise _refuse(name, f"array {name!r} cannot be read without pickle: {exc}") from exc
            return arrays
    except InvalidArgument:
        raise
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise InvalidArgument.for_field("dataset", f"cannot read npz file {str(path)!r}: {exc}") from exc


def _check_features(name: str, x: np.ndarray) -> None:
    if x.shape[0] == 0 or x.size == 0:
        raise _refuse(name, f"array {name!r} is empty (shape {list(x.shape)})")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise _refuse(name, f"array {name!r} must be real numbers, has dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise _refuse(name, f"array {name!r} contains NaN or Inf values (first at row {row})")


def _check_labels(name: str, y: np.ndarray) -> IntArray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise _refuse(name, f"labels {name!r} must be one integer per row, has shape {list(y.shape)}")
    if y.shape[0] == 0:
        raise _refuse(name, f"array {name!r} is empty")
    if np.issubdtype(y.dtype, np.floating):
        integral = np.isfinite(y) & (y == np.round(y))
        if not integral.all():
            row = int(np.flatnonzero(~integral)[0])
            raise _refuse(name, f"labels {name!r} must be integers, row {row} holds {y[row]!r}")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise _refuse(name, f"labels {name!r} must be integers, have dtype {y.dtype}")
    labels = y.astype(np.int64)
    if labels.min() < 0:
        row = int(np.flatnonzero(labels < 0)[0])
        raise _refuse(name, f"labels {name!r} must be class indices from 0, row {row} holds {labels[row]}")
    return labels


def _as_model_input(x: np.ndarray) -> FloatArray:
    """[N, H, W] → [N, 1, H, W]; [N, C, H, W] as is; anything else → [N, features]."""
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    data = x.astype(np.float32) / np.float32(scale)
    if data.ndim == 3:
        return data[:, None, :, :]
    if data.ndim == 4:
        return data
    return data.reshape(data.shape[0], -1)


def load_npz(path_text: str) -> RawSplit:
    """Read `x_train, y_train, x_test, y_test` from an .npz file and refuse bad data.

    Image arrays (rank 3 or 4) keep their layout; uint8 pixels are scaled to [0, 1].
    Every refusal names the array (field `npz.<array>`) and what is wrong with it.
    """
    if not path_text:
        raise InvalidArgument.for_field("dataset", "npz: needs a path, as in npz:/data/set.npz")
    arrays = _read_arrays(Path(path_text).expanduser())
    for x_name, y_name in (("x_train", "y_train"), ("x_test", "y_test")):
        x, y = arrays[x_name], arrays[y_name]
        if x.ndim == 0 or y.ndim == 0:
            scalar = x_name if x.ndim == 0 else y_name
            raise _refuse(scalar, f"array {scalar!r} is a scalar; it needs one row per sample")
        if x.shape[0] != y.shape[0]:
            raise _refuse(y_name, f"{x_name} has {x.shape[0]} rows but {y_name} has {y.shape[0]}; they must match")
        _check_features(x_name, x)
    y_train = _check_labels("y_train", arrays["y_train"])
    y_test = _check_labels("y_test", arrays["y_test"])
    x_train, x_test = _as_model_input(arrays["x_train"]), _as_model_input(arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise _refuse(
            "x_test",
            f"x_train samples have shape {list(x_train.shape[1:])} but x_test samples have "
            f"{list(x_test.shape[1:])}; they must match",
        )
    kind = blueprint_pb2.INPUT_KIND_IMAGE if x_train.ndim == 4 else blueprint_pb2.INPUT_KIND_FEATURES
    return RawSplit(f"npz:{path_text}", kind, x_train, y_train, x_test, y_test)
