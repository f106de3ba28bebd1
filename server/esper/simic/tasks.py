"""Generated classification tasks for Simic's episodes, written as `.npz` files Esper reads.

Each family makes a task whose difficulty a few numbers set (dimensions, classes,
noise, how tangled the classes are), so a curriculum can go from easy to hard and a
small host can be made to start under capacity. Generation is deterministic: the same
`TaskSpec` always gives the same bytes, so an episode is repeatable with its seed.

Feature families ([dims] vectors):
  rings     classes are concentric shells in the first `k` dims, noise in the rest;
  checker   a checkerboard over the first two dims (cells alternate classes), noise in the rest;
  blobs     each class is a mixture of several Gaussian clusters;
  twist     interleaved spiral arms in a random 2-D plane of the space.
Image families ([1, size, size] pixels in [0, 1]):
  stripes   the orientation of a noisy grating;
  shapes    which outline (square, cross, ring, triangle...) sits somewhere on a noisy canvas;
  blocks    which quadrant pattern of bright blocks, under pixel noise.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from esper.fsutil import atomic_write

FEATURE_FAMILIES = ("rings", "checker", "blobs", "twist")
IMAGE_FAMILIES = ("stripes", "shapes", "blocks")


@dataclass(frozen=True)
class TaskSpec:
    """One generated task. `dims` is the feature count or the image side."""

    family: str
    dims: int
    classes: int
    noise: float
    samples: int = 2000
    difficulty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.family not in FEATURE_FAMILIES + IMAGE_FAMILIES:
            raise ValueError(f"family must be one of {FEATURE_FAMILIES + IMAGE_FAMILIES}, got {self.family!r}")
        if not 2 <= self.classes <= 16:
            raise ValueError(f"classes must be in [2, 16], got {self.classes}")
        if not 2 <= self.dims <= 64:
            raise ValueError(f"dims must be in [2, 64], got {self.dims}")
        if not 100 <= self.samples <= 50_000:
            raise ValueError(f"samples must be in [100, 50000], got {self.samples}")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def write_task(spec: TaskSpec, directory: Path) -> Path:
    """The task's `.npz` in `directory` (generated once; the file name carries its fingerprint)."""
    path = directory / f"{spec.family}-{spec.fingerprint()}.npz"
    if path.is_file():
        return path
    x, y = generate(spec)
    test = max(1, spec.samples // 5)
    directory.mkdir(parents=True, exist_ok=True)
    import io

    buffer = io.BytesIO()
    np.savez(buffer, x_train=x[test:], y_train=y[test:], x_test=x[:test], y_test=y[:test])
    atomic_write(path, buffer.getvalue())
    return path


def generate(spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) for a task: float32 features [n, dims] or images [n, 1, dims, dims]; int64 labels."""
    rng = np.random.default_rng(int(spec.fingerprint(), 16) % (2**32))
    if spec.family == "checker":
        x, y = _checker(spec, rng)
    else:
        y = rng.integers(0, spec.classes, size=spec.samples).astype(np.int64)
        x = _FAMILIES[spec.family](spec, y, rng)
    return x.astype(np.float32), y.astype(np.int64)


def _rings(spec: TaskSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = min(spec.dims, 3)
    direction = rng.normal(size=(len(y), k))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = 1.0 + y + rng.normal(0.0, spec.noise, size=len(y))
    x = rng.normal(0.0, 1.0, size=(len(y), spec.dims))
    x[:, :k] = direction * radius[:, None]
    return x


def _checker(spec: TaskSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cells = max(2, round(2 + 2 * spec.difficulty))
    x = rng.normal(0.0, 1.0, size=(spec.samples, spec.dims))
    grid = rng.uniform(0.0, cells, size=(spec.samples, 2))
    y = (np.floor(grid[:, 0]) + np.floor(grid[:, 1])).astype(np.int64) % spec.classes
    x[:, :2] = grid + rng.normal(0.0, spec.noise, size=grid.shape)
    return x, y


def _blobs(spec: TaskSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    clusters = max(1, round(2 * spec.difficulty))
    centres = rng.normal(0.0, 2.5, size=(spec.classes, clusters, spec.dims))
    which = rng.integers(0, clusters, size=len(y))
    return centres[y, which] + rng.normal(0.0, 1.0 + spec.noise, size=(len(y), spec.dims))


def _twist(spec: TaskSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.05, 1.0, size=len(y))
    angle = 2 * math.pi * (spec.difficulty * t + y / spec.classes) + rng.normal(0.0, spec.noise, size=len(y))
    plane = np.linalg.qr(rng.normal(size=(spec.dims, 2)))[0]  # [dims, 2], orthonormal
    flat = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    return flat @ plane.T + rng.normal(0.0, 0.05, size=(len(y), spec.dims))


def _canvas(spec: TaskSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, spec.noise, size=(n, 1, spec.dims, spec.dims))


def _stripes(spec: TaskSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = spec.dims
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    angle = math.pi * y / spec.classes + rng.normal(0.0, 0.05 * spec.difficulty, size=len(y))
    period = rng.uniform(2.5, 4.0, size=len(y))
    phase = rng.uniform(0.0, 2 * math.pi, size=len(y))
    wave = np.cos(
        2
        * math.pi
        * (np.cos(angle)[:, None, None] * rows + np.sin(angle)[:, None, None] * cols)
        / period[:, None, None]
        + phase[:, None, None]
    )
    x = _canvas(spec, len(y), rng)
    x[:, 0] += 0.5 + 0.5 * wave
    return np.clip(x / (1.0 + spec.noise), 0.0, 1.0)


def _shapes(spec: TaskSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = spec.dims
    x = _canvas(spec, len(y), rng)
    for n, label in enumerate(y):
        side = int(rng.integers(max(3, size // 3), max(4, size // 2) + 1))
        top = int(rng.integers(0, size - side + 1))
        left = int(rng.integers(0, size - side + 1))
        x[n, 0, top : top + side, left : left + side] = np.maximum(
            x[n, 0, top : top + side, left : left + side], _outline(int(label), side)
        )
    return np.clip(x, 0.0, 1.0)


def _outline(label: int, side: int) -> np.ndarray:
    """One of a few outlines, by label, drawn in a side x side box."""
    box = np.zeros((side, side))
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    centre = (side - 1) / 2
    kind = label % 8
    if kind == 0:  # square
        box[[0, -1], :] = 1.0
        box[:, [0, -1]] = 1.0
    elif kind == 1:  # cross
        box[side // 2, :] = 1.0
        box[:, side // 2] = 1.0
    elif kind == 2:  # ring
        r = np.hypot(rows - centre, cols - centre)
        box[np.abs(r - centre) < 0.75] = 1.0
    elif kind == 3:  # triangle
        box[-1, :] = 1.0
        box[rows == cols] = 1.0
        box[:, 0] = 1.0
    elif kind == 4:  # diagonal X
        box[(rows == cols) | (rows + cols == side - 1)] = 1.0
    elif kind == 5:  # horizontal bars
        box[::2, :] = 1.0
    elif kind == 6:  # filled disc
        box[np.hypot(rows - centre, cols - centre) <= centre] = 1.0
    else:  # corner L
        box[-1, :] = 1.0
        box[:, -1] = 1.0
    return box


def _blocks(spec: TaskSpec, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = spec.dims
    half = size // 2
    x = _canvas(spec, len(y), rng)
    patterns = rng.permutation(16)[: spec.classes]
    for n, label in enumerate(y):
        bits = int(patterns[label])
        for quadrant in range(4):
            if bits >> quadrant & 1:
                top, left = (quadrant // 2) * half, (quadrant % 2) * half
                x[n, 0, top : top + half, left : left + half] += rng.uniform(0.4, 0.8)
    return np.clip(x, 0.0, 1.0)


_FAMILIES = {
    "rings": _rings,
    "blobs": _blobs,
    "twist": _twist,
    "stripes": _stripes,
    "shapes": _shapes,
    "blocks": _blocks,
}
