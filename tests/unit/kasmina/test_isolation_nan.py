"""A non-finite host activation is the host's problem, not an isolation violation."""

import torch

from esper.kasmina.isolation import forward_mismatch, identical


def test_nan_in_the_same_places_counts_as_identical() -> None:
    x = torch.tensor([1.0, float("nan"), float("inf"), -0.0])
    assert identical(x, x.clone())
    assert forward_mismatch(x, x.clone()) is None


def test_a_real_difference_is_still_a_mismatch() -> None:
    x = torch.tensor([1.0, float("nan")])
    assert not identical(x, torch.tensor([1.5, float("nan")]))
    assert not identical(x, torch.tensor([1.0, 2.0]))
    assert "max |difference|" in (forward_mismatch(x, torch.tensor([1.0, 2.0])) or "")
