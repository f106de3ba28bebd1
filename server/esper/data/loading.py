"""`load_dataset`: a dataset name to train/validation/test tensors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from esper import checks
from esper.data.bundle import Dataset
from esper.data.npz import load_npz
from esper.data.sources import RawSplit, load_digits, load_mnist5k, load_products6, load_spirals
from esper.data.splits import split_indices, standardization, standardize
from esper.data.text import TEXT_NAME, TEXT_PREFIX, is_text, load_text
from esper.errors import InvalidArgument
from esper.leyline.v1 import blueprint_pb2

logger = logging.getLogger(__name__)

BUILT_IN: dict[str, Callable[[], RawSplit]] = {
    "digits": load_digits,
    "mnist5k": load_mnist5k,
    "spirals": load_spirals,
    "products6": load_products6,
}
NPZ_PREFIX = "npz:"
DATASET_NAMES = (*BUILT_IN, f"{NPZ_PREFIX}PATH", TEXT_NAME, f"{TEXT_PREFIX}PATH")
MAX_CLASSES = 10_000


def _raw_split(spec: str) -> RawSplit:
    if spec.startswith(NPZ_PREFIX):
        return load_npz(spec[len(NPZ_PREFIX) :])
    source = BUILT_IN.get(spec)
    if source is None:
        raise InvalidArgument.for_field("dataset", f"unknown dataset {spec!r}; valid: {', '.join(DATASET_NAMES)}")
    return source()


# The validation split's own seed (the test split has FIXED_SPLIT_SEED in sources).
VALIDATION_SPLIT_SEED = 4321


def load_dataset(
    spec: str, *, seed: int, validation_fraction: float = 0.15, validation_seed: int | None = None
) -> Dataset:
    """Load `spec` with its fixed test split and a validation split carved from training rows.

    `spec` is "digits", "mnist5k", "spirals", "products6", "npz:PATH", or "text" / "text:PATH"
    (character-level language modelling, esper.data.text, whose splits the corpus fixes:
    `validation_fraction` does not apply). The validation rows are
    drawn with `validation_seed` (stratified where every class has two rows or more),
    by default a fixed one: runs that differ only in `seed` then train and validate on
    the same rows, so comparing them measures the method, not the split. The test rows
    never move. FEATURES inputs are standardized with the statistics of the remaining
    training rows; IMAGE inputs stay in their [0, 1] pixel scale.
    """
    checks.in_range("validation_fraction", validation_fraction, 0.0, 1.0, low_open=True, high_open=True)
    checks.non_negative("seed", seed)
    if is_text(spec.strip()):
        return _text_dataset(spec.strip())
    raw = _raw_split(spec.strip())
    num_classes = int(max(raw.y_train.max(), raw.y_test.max())) + 1
    if num_classes > MAX_CLASSES:
        raise InvalidArgument.for_field(
            "dataset", f"labels run up to {num_classes - 1}; at most {MAX_CLASSES} classes are supported"
        )
    split_seed = VALIDATION_SPLIT_SEED if validation_seed is None else validation_seed
    checks.non_negative("validation_seed", split_seed)
    keep, held = split_indices(raw.y_train, validation_fraction, split_seed)
    x_train, x_val, x_test = raw.x_train[keep], raw.x_train[held], raw.x_test
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    if raw.input_kind == blueprint_pb2.INPUT_KIND_FEATURES:
        mean_array, std_array = standardization(x_train)
        x_train, x_val, x_test = (standardize(p, mean_array, std_array) for p in (x_train, x_val, x_test))
        mean, std = _tensor(mean_array), _tensor(std_array)
    dataset = Dataset(
        name=raw.name,
        input_kind=raw.input_kind,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=num_classes,
        x_train=_tensor(x_train),
        y_train=torch.from_numpy(np.ascontiguousarray(raw.y_train[keep])),
        x_val=_tensor(x_val),
        y_val=torch.from_numpy(np.ascontiguousarray(raw.y_train[held])),
        x_test=_tensor(x_test),
        y_test=torch.from_numpy(np.ascontiguousarray(raw.y_test)),
        feature_mean=mean,
        feature_std=std,
    )
    logger.info("dataset %s", dataset.describe())
    return dataset


def _text_dataset(spec: str) -> Dataset:
    """A character-level language-modelling set (esper.data.text); its splits are fixed by the corpus."""
    text = load_text(spec)
    dataset = Dataset(
        name=text.name,
        input_kind=blueprint_pb2.INPUT_KIND_SEQUENCE,
        input_shape=(int(text.x_train.shape[1]),),
        num_classes=len(text.vocabulary),
        x_train=text.x_train,
        y_train=text.y_train,
        x_val=text.x_val,
        y_val=text.y_val,
        x_test=text.x_test,
        y_test=text.y_test,
        metric="bits_per_character",
        vocabulary=text.vocabulary,
    )
    logger.info("dataset %s", dataset.describe())
    return dataset


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
