"""Character-level text data: the default corpus ships with Python, splits and windows are fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.data import load_dataset
from esper.data.text import BLOCK_CHARS, load_text, stdlib_corpus
from esper.errors import InvalidArgument
from esper.leyline.v1 import blueprint_pb2


def _corpus(tmp_path: Path, chars: int = 12 * BLOCK_CHARS) -> Path:
    words = "the quick brown fox jumps over the lazy dog; "
    path = tmp_path / "corpus.txt"
    path.write_text((words * (chars // len(words) + 1))[:chars], encoding="utf-8")
    return path


def test_the_default_corpus_is_the_standard_library_source_and_is_deterministic() -> None:
    text = stdlib_corpus(50_000)
    assert len(text) == 50_000 and "def " in text and "import " in text
    assert stdlib_corpus(50_000) == text


def test_windows_are_inputs_and_the_next_characters(tmp_path: Path) -> None:
    splits = load_text(f"text:{_corpus(tmp_path)}", context=16)
    assert splits.x_train.dtype == torch.int64 and splits.x_train.shape[1] == 16
    assert torch.equal(splits.x_train[0, 1:], splits.y_train[0, :-1])
    assert torch.equal(splits.y_train[0, -1:], splits.x_train[1, :1])
    assert splits.vocabulary[0] == "\x00" and "q" in splits.vocabulary
    decoded = "".join(splits.vocabulary[i] for i in splits.x_train[0].tolist())
    assert decoded == "the quick brown "
    # A tenth of the blocks each: validation and test come from the same text.
    assert len(splits.x_val) == len(splits.x_test) and len(splits.x_train) > 7 * len(splits.x_val)
    again = load_text(f"text:{_corpus(tmp_path)}", context=16)
    assert torch.equal(again.x_val, splits.x_val)


def test_characters_the_training_split_never_saw_map_to_the_unknown_id(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    text = path.read_text(encoding="utf-8")
    # Block 8 (validation) gets a character no training block has.
    start = 8 * BLOCK_CHARS
    path.write_text(text[:start] + "é" + text[start + 1 :], encoding="utf-8")
    splits = load_text(f"text:{path}", context=16)
    assert "é" not in splits.vocabulary
    assert int(splits.x_val[0, 0]) == 0


def test_a_text_dataset_is_judged_in_bits_per_character(tmp_path: Path) -> None:
    data = load_dataset(f"text:{_corpus(tmp_path)}", seed=3)
    assert data.metric == "bits_per_character" and data.input_kind == blueprint_pb2.INPUT_KIND_SEQUENCE
    assert data.num_classes == len(data.vocabulary or "") and data.input_shape == (64,)


@pytest.mark.parametrize(
    ("spec", "words"),
    [("text:/no/such/corpus.txt", "does not exist"), ("text:", "needs a path")],
)
def test_missing_text_is_refused_naming_the_dataset(spec: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        load_dataset(spec, seed=0)
    assert info.value.violations[0].field == "dataset" and words in info.value.message


def test_a_corpus_too_small_to_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as info:
        load_text(f"text:{_corpus(tmp_path, chars=3 * BLOCK_CHARS)}", context=64)
    assert "validation split" in info.value.message
