"""Mini-batches over in-memory tensors, driven by a seeded generator."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from esper import checks


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield `(x[idx], y[idx])` batches; the last one may be smaller.

    The data is small and already in memory, so indexing is all a loader needs: no
    worker processes, no collation. With `shuffle`, the order comes from `generator`
    only, so the same generator state gives the same batches.
    """
    checks.positive("batch_size", batch_size)
    rows = x.shape[0]
    if y.shape[0] != rows:
        raise ValueError(f"x has {rows} rows but y has {y.shape[0]}")
    if shuffle:
        order = torch.randperm(rows, generator=generator)
        for start in range(0, rows, batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]
    else:
        for start in range(0, rows, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def batch_count(rows: int, batch_size: int) -> int:
    """Number of batches `batches` yields for `rows` rows."""
    return -(-rows // batch_size)
