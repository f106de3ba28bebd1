"""Compiling and loading kernels in several threads of one process at once.

torch.export keeps tracing state in process-wide globals; without EXPORT_LOCK the
thread pairs below fail within a few rounds ("ProxyTorchDispatchMode slot already
occupied", "Trying to pop empty mode stack").
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from esper.tezzeret import pipelines
from esper.tezzeret.artifacts import load_kernel_module
from esper.tezzeret.config import FAST, STANDARD
from esper.tezzeret.export_lock import EXPORT_LOCK, exclusive
from tests.unit.tezzeret.conftest import ConfigFactory

ROUNDS = 6


def _compile_and_load(make_config: ConfigFactory, pipeline: int, activation: type[nn.Module]) -> list[str]:
    """ROUNDS compile-then-load cycles; what went wrong, if anything."""
    config = make_config()
    failures: list[str] = []
    for round_ in range(ROUNDS):
        torch.manual_seed(round_)
        module = nn.Sequential(nn.Linear(8, 8), activation())
        x = torch.randn(3, 8)
        try:
            compiled = pipelines.compile_module(module, torch.randn(4, 8), pipeline, config)
            loaded = load_kernel_module(compiled.data, pipeline)
            if not torch.allclose(loaded(x), module(x), atol=1e-5):
                failures.append(f"round {round_}: loaded kernel differs from eager")
        except Exception as exc:
            failures.append(f"round {round_}: {type(exc).__name__}: {exc}")
    return failures


def test_two_threads_compile_and_load_kernels_side_by_side(make_config: ConfigFactory) -> None:
    background: list[str] = []
    worker = threading.Thread(
        target=lambda: background.extend(_compile_and_load(make_config, STANDARD, nn.GELU)), daemon=True
    )
    worker.start()
    foreground = _compile_and_load(make_config, FAST, nn.ReLU)
    worker.join()
    assert (foreground, background) == ([], [])


def test_exclusive_holds_the_lock_and_nests() -> None:
    seen: list[bool] = []

    @exclusive
    def inner() -> None:
        seen.append(EXPORT_LOCK._is_owned())  # type: ignore[attr-defined]

    @exclusive
    def outer() -> None:
        inner()

    outer()
    assert seen == [True]
    assert not EXPORT_LOCK._is_owned()  # type: ignore[attr-defined]
