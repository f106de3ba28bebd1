"""Character-level language modelling data: a text corpus as fixed-length sequences of character ids.

`text` is the default corpus, present on every machine without a download: the
Python standard library's own top-level source files (`sysconfig.get_paths()["stdlib"]`),
read in sorted order up to `DEFAULT_CHARS` characters. `text:PATH` reads a file, or
every regular file of a folder in sorted order. Nothing is random: the corpus is cut
into blocks of `BLOCK_CHARS` characters and every tenth block (from the ninth) goes to
validation, every tenth (from the tenth) to test, so the three splits come from the
same texts. The vocabulary is the training split's characters; index 0 stands for any
other character. Each split becomes non-overlapping windows of `context + 1`
characters: the first `context` are the inputs, the last `context` the next-character
targets. The model is judged in bits per character.
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from esper import checks
from esper.errors import InvalidArgument

TEXT_NAME = "text"
TEXT_PREFIX = "text:"
DEFAULT_CONTEXT = 64
DEFAULT_CHARS = 600_000
MAX_CHARS = 50_000_000
BLOCK_CHARS = 2048
VALIDATION_BLOCK, TEST_BLOCK, BLOCK_PERIOD = 8, 9, 10
UNKNOWN = "\x00"


@dataclass(frozen=True)
class TextSplits:
    """The three splits as [windows, context] int64 inputs and next-character targets, and the vocabulary."""

    name: str
    vocabulary: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def is_text(spec: str) -> bool:
    return spec == TEXT_NAME or spec.startswith(TEXT_PREFIX)


def stdlib_corpus(max_chars: int = DEFAULT_CHARS) -> str:
    """The Python standard library's top-level .py files, sorted by name, up to `max_chars` characters."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return _read_files(sorted(path for path in root.glob("*.py") if path.is_file()), max_chars, str(root))


def read_corpus(spec: str, max_chars: int = DEFAULT_CHARS) -> tuple[str, str]:
    """(name, text) for "text" or "text:PATH"; InvalidArgument naming `dataset` when there is no text there."""
    if spec == TEXT_NAME:
        return "text:stdlib", stdlib_corpus(max_chars)
    path = Path(spec[len(TEXT_PREFIX) :]).expanduser()
    if not spec[len(TEXT_PREFIX) :]:
        raise InvalidArgument.for_field("dataset", "text: needs a path, as in text:/data/corpus.txt")
    if path.is_dir():
        files = sorted(item for item in path.rglob("*") if item.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise InvalidArgument.for_field("dataset", f"text file or folder {str(path)!r} does not exist")
    return spec, _read_files(files, max_chars, str(path))


def _read_files(files: list[Path], max_chars: int, where: str) -> str:
    parts: list[str] = []
    total = 0
    for file in files:
        if total >= max_chars:
            break
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InvalidArgument.for_field("dataset", f"cannot read {str(file)!r}: {exc}") from exc
        parts.append(text[: max_chars - total])
        total += len(parts[-1])
    return "".join(parts)


def load_text(spec: str, *, context: int = DEFAULT_CONTEXT, max_chars: int = DEFAULT_CHARS) -> TextSplits:
    """The corpus `spec` names, split and windowed (see the module docstring)."""
    checks.in_range("context", context, 2, 4096)
    checks.in_range("max_chars", max_chars, 1, MAX_CHARS)
    name, text = read_corpus(spec, max_chars)
    blocks = [text[start : start + BLOCK_CHARS] for start in range(0, len(text), BLOCK_CHARS)]
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for index, block in enumerate(blocks):
        phase = index % BLOCK_PERIOD
        parts["val" if phase == VALIDATION_BLOCK else "test" if phase == TEST_BLOCK else "train"].append(block)
    train, val, test = ("".join(parts[key]) for key in ("train", "val", "test"))
    need = 2 * (context + 1)
    for split, content in (("training", train), ("validation", val), ("test", test)):
        if len(content) < need:
            raise InvalidArgument.for_field(
                "dataset",
                f"{name}: the {split} split has {len(content)} characters, fewer than two windows of "
                f"{context + 1}; a tenth of the corpus goes to each of validation and test, so it needs "
                f"at least {BLOCK_PERIOD * BLOCK_CHARS:,} characters",
            )
    vocabulary = UNKNOWN + "".join(sorted(set(train) - {UNKNOWN}))
    char_ids = {char: i for i, char in enumerate(vocabulary)}
    x_train, y_train = _windows(train, char_ids, context)
    x_val, y_val = _windows(val, char_ids, context)
    x_test, y_test = _windows(test, char_ids, context)
    return TextSplits(name, vocabulary, x_train, y_train, x_val, y_val, x_test, y_test)


def _windows(text: str, index: dict[str, int], context: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = np.fromiter((index.get(char, 0) for char in text), dtype=np.int64, count=len(text))
    count = (len(ids) - 1) // context
    inputs = ids[: count * context].reshape(count, context)
    targets = ids[1 : count * context + 1].reshape(count, context)
    return torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(np.ascontiguousarray(targets))
