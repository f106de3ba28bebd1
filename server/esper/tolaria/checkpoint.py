"""Checkpoints of host, seeds, controller, optimizers and random state, in lockstep.

A checkpoint is a dict of tensors and plain values saved with `torch.save` and
read back with `torch.load(..., weights_only=True)`: no pickled code. It is written
to a temporary file and renamed, so a crash never leaves a torn checkpoint.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from esper.fsutil import atomic_writer

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as handle:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, handle)


def load_checkpoint(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    return state


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A deep, detached copy of `state` held in memory (the last known-good point for rollback)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    copied: dict[str, Any] = torch.load(buffer, weights_only=True)
    return copied
