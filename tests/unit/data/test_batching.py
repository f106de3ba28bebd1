"""Batching: every row once per pass, order driven only by the generator."""

from __future__ import annotations

import pytest
import torch

from esper.data import batch_count, batches


def _pass(generator: torch.Generator | None, shuffle: bool, batch_size: int = 16) -> list[torch.Tensor]:
    x = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 3)
    y = torch.arange(50)
    out = []
    for xb, yb in batches(x, y, batch_size, generator, shuffle):
        assert torch.equal(xb[:, 0].long(), yb)  # rows stay paired with their labels
        out.append(yb)
    return out


def test_every_row_once_with_a_short_last_batch() -> None:
    parts = _pass(torch.Generator().manual_seed(0), shuffle=True)
    assert [len(p) for p in parts] == [16, 16, 16, 2] and len(parts) == batch_count(50, 16)
    assert sorted(torch.cat(parts).tolist()) == list(range(50))


def test_same_generator_seed_same_order_other_seed_other_order() -> None:
    a = torch.cat(_pass(torch.Generator().manual_seed(1), shuffle=True))
    b = torch.cat(_pass(torch.Generator().manual_seed(1), shuffle=True))
    c = torch.cat(_pass(torch.Generator().manual_seed(2), shuffle=True))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_successive_passes_reshuffle_and_leave_the_global_rng_alone() -> None:
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    expected_global = torch.rand(1)
    torch.manual_seed(0)
    first, second = torch.cat(_pass(generator, True)), torch.cat(_pass(generator, True))
    assert not torch.equal(first, second)
    assert torch.equal(torch.rand(1), expected_global)


def test_no_shuffle_keeps_order() -> None:
    assert torch.cat(_pass(None, shuffle=False)).tolist() == list(range(50))


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _pass(None, shuffle=False, batch_size=0)
