"""Where a run's batches come from: Esper's in-memory splits, or any re-iterable source.

A batch is an `(inputs, targets)` pair; the model is called as `model(inputs)` and the
objective with `(outputs, targets)`. Inputs and targets are tensors, or tuples, lists
or dicts of them; they are moved to the run's device as they are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from esper.data.batching import batches
from esper.data.bundle import Dataset
from esper.errors import InvalidArgument

Batch = tuple[Any, Any]
EVAL_BATCH_SIZE = 512


class RunData(Protocol):
    """The training, validation and (optionally) test batches of a run."""

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        """One epoch of training batches; an in-memory source shuffles with `generator`."""
        ...

    def val_batches(self) -> Iterable[Batch]: ...

    def test_batches(self) -> Iterable[Batch] | None:
        """The held-out test batches, or None when the run has none."""
        ...


@dataclass(frozen=True)
class TensorData:
    """Esper's own splits (`esper.data.Dataset`): shuffled training batches, fixed evaluation batches."""

    dataset: Dataset
    batch_size: int
    eval_batch_size: int = EVAL_BATCH_SIZE

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        return batches(self.dataset.x_train, self.dataset.y_train, self.batch_size, generator)

    def val_batches(self) -> Iterable[Batch]:
        return batches(self.dataset.x_val, self.dataset.y_val, self.eval_batch_size, shuffle=False)

    def test_batches(self) -> Iterable[Batch] | None:
        return batches(self.dataset.x_test, self.dataset.y_test, self.eval_batch_size, shuffle=False)


@dataclass(frozen=True)
class IterableData:
    """A user's sources (DataLoaders, lists of batches): iterated once per epoch, shuffled by themselves."""

    train: Iterable[Batch]
    val: Iterable[Batch]
    test: Iterable[Batch] | None = None

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            source = getattr(self, name)
            if source is None and name == "test":
                continue
            _check_reiterable(f"{name}_data", source)

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        return _checked("train_data", self.train)

    def val_batches(self) -> Iterable[Batch]:
        return _checked("val_data", self.val)

    def test_batches(self) -> Iterable[Batch] | None:
        return _checked("test_data", self.test) if self.test is not None else None


def _check_reiterable(field: str, source: Any) -> None:
    if not isinstance(source, Iterable):
        raise InvalidArgument.for_field(
            field, f"must be an iterable of (inputs, targets) batches, got {type(source).__name__}"
        )
    if isinstance(source, Iterator):
        raise InvalidArgument.for_field(
            field, "must be re-iterable (a DataLoader, a list of batches), not a one-shot iterator or generator"
        )


def _checked(field: str, source: Iterable[Any]) -> Iterator[Batch]:
    for index, batch in enumerate(source):
        if not isinstance(batch, list | tuple) or len(batch) != 2:
            raise InvalidArgument.for_field(
                field, f"batch {index} is a {type(batch).__name__}; each batch must be an (inputs, targets) pair"
            )
        yield batch[0], batch[1]


def to_device(value: Any, device: torch.device) -> Any:
    """`value` (a tensor, or tuples, lists and dicts of them) on `device`; a no-op where it already is."""
    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device, non_blocking=True)
    if isinstance(value, tuple):
        return tuple(to_device(item, device) for item in value)
    if isinstance(value, list):
        return [to_device(item, device) for item in value]
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    return value


def first_input(data: RunData, rows: int = 2) -> Any:
    """The first `rows` inputs of the first validation batch: an example to trace a model with."""
    for inputs, _ in data.val_batches():
        return _head(inputs, rows)
    raise InvalidArgument.for_field("val_data", "has no batches")


def _head(value: Any, rows: int) -> Any:
    return slice_rows(value, 0, rows)


def slice_rows(value: Any, low: int, high: int) -> Any:
    """Rows [low, high) of every tensor in `value` (a tensor, or tuples, lists and dicts of them)."""
    if isinstance(value, torch.Tensor):
        return value[low:high]
    if isinstance(value, tuple | list):
        return type(value)(slice_rows(item, low, high) for item in value)
    if isinstance(value, dict):
        return {key: slice_rows(item, low, high) for key, item in value.items()}
    return value


def batch_rows(value: Any) -> int:
    """Rows of a batch: of its tensor, or of the first tensor inside a tuple, list or dict."""
    if isinstance(value, torch.Tensor):
        return int(value.shape[0]) if value.dim() else 1
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    for item in items:
        return batch_rows(item)
    raise InvalidArgument.for_field("targets", f"a batch's targets must hold a tensor, got {type(value).__name__}")
