"""Deterministic, stratified splits and train-only standardization."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from esper.errors import InvalidArgument

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def split_indices(labels: IntArray, fraction: float, seed: int) -> tuple[IntArray, IntArray]:
    """Split row indices into `(kept, held_out)` with about `fraction` of rows held out.

    Stratified when every class has at least two rows (each class then keeps at least
    one row on both sides); otherwise a plain random split. The result depends only on
    `labels`, `fraction` and `seed`. Both parts come back sorted, so the split does not
    reorder the data.
    """
    rows = labels.shape[0]
    if rows < 2:
        raise InvalidArgument.for_field("dataset", f"needs at least 2 training rows to split, has {rows}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() >= 2:
        held: list[IntArray] = []
        for label, count in zip(classes, counts, strict=True):
            members = np.flatnonzero(labels == label)
            take = min(max(1, round(fraction * count)), count - 1)
            held.append(rng.permutation(members)[:take])
        held_out = np.concatenate(held)
    else:
        take = min(max(1, round(fraction * rows)), rows - 1)
        held_out = rng.permutation(rows)[:take]
    mask = np.zeros(rows, dtype=bool)
    mask[held_out] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def standardization(train: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-column mean and std of the training rows.

    Constant columns (zero variance in training) get std 1: centred but not scaled,
    so they stay finite.
    """
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[std == 0.0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(part: FloatArray, mean: FloatArray, std: FloatArray) -> FloatArray:
    """Scale columns to the training rows' zero mean and unit variance."""
    return ((part - mean) / std).astype(np.float32)
