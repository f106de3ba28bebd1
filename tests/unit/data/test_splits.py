"""Stratified splitting, including classes too small to stratify."""

from __future__ import annotations

import numpy as np
import pytest

from esper.data.splits import split_indices
from esper.errors import InvalidArgument


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    labels = np.repeat(np.arange(4), [2, 10, 30, 58])
    kept, held = split_indices(labels, 0.2, seed=0)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(100))
    assert set(labels[held].tolist()) == set(range(4)) == set(labels[kept].tolist())
    assert np.bincount(labels[held]).tolist() == [1, 2, 6, 12]


def test_singleton_class_falls_back_to_a_random_split() -> None:
    labels = np.array([0] * 20 + [1])
    kept, held = split_indices(labels, 0.25, seed=0)
    assert len(held) == 5 and not set(kept.tolist()) & set(held.tolist())


def test_deterministic_given_seed() -> None:
    labels = np.arange(200) % 5
    assert np.array_equal(split_indices(labels, 0.15, 4)[1], split_indices(labels, 0.15, 4)[1])
    assert not np.array_equal(split_indices(labels, 0.15, 4)[1], split_indices(labels, 0.15, 5)[1])


def test_too_few_rows() -> None:
    with pytest.raises(InvalidArgument):
        split_indices(np.array([0]), 0.5, 0)
