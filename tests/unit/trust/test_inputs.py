"""Bounded inputs: the YAML loader refuses aliases, size and depth; quotes are cut; paths stay in their root."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.config import load_config, parse_config
from esper.errors import InvalidArgument
from esper.trust.inputs import MAX_YAML_BYTES, confine, load_yaml, quote
from tests.support.crafted import alias_bomb


def test_the_alias_bomb_is_small_and_refused_at_its_first_anchor() -> None:
    bomb = alias_bomb()
    assert len(bomb.encode()) < 1024
    with pytest.raises(InvalidArgument, match="anchors are not accepted") as caught:
        parse_config(bomb)
    assert caught.value.violations[0].field == "config"


def test_an_alias_alone_is_refused_too() -> None:
    with pytest.raises(InvalidArgument, match="not accepted YAML"):
        load_yaml("run: *missing\n")


def test_a_file_with_the_bomb_is_refused_by_load_config(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    with pytest.raises(InvalidArgument, match="anchors"):
        load_config(path)


def test_oversized_and_deeply_nested_documents_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=f"at most {MAX_YAML_BYTES}"):
        load_yaml("a: " + "x" * MAX_YAML_BYTES)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_YAML_BYTES)
    with pytest.raises(InvalidArgument, match="bytes; at most"):
        load_config(big)
    with pytest.raises(InvalidArgument, match="nested deeper"):
        load_yaml("[" * 100 + "]" * 100)


def test_plain_yaml_still_reads_yaml_1_2_floats() -> None:
    assert load_yaml("lr: 3e-3\nxs: [1, 2]\n") == {"lr": 0.003, "xs": [1, 2]}
    assert load_yaml("   ") is None


def test_a_long_value_is_quoted_short_in_errors() -> None:
    huge = "x" * 50_000
    with pytest.raises(InvalidArgument) as caught:
        parse_config(f"run:\n  epochs: {huge}\n")
    assert len(caught.value.message) < 600
    assert "50000 characters" in caught.value.message
    assert quote("short") == "'short'"
    assert quote(b"y" * 1000).endswith("(1000 bytes)")


def test_confine_keeps_paths_inside_their_root(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    assert confine("a/b", root, field="out_dir") == (root / "a" / "b").resolve()
    assert confine(root / "c", root, field="out_dir") == (root / "c").resolve()
    for escape in ("../outside", "/etc", str(root), "a/../../x"):
        with pytest.raises(InvalidArgument, match="outside") as caught:
            confine(escape, root, field="out_dir")
        assert caught.value.violations[0].field == "out_dir"
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidArgument, match="outside"):
        confine("link/secret", root, field="out_dir")


def test_confine_refuses_a_nul_and_reads_a_tilde_as_a_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="NUL"):
        confine("a\x00b", tmp_path, field="out_dir")
    assert confine("~nobody-here", tmp_path, field="out_dir") == (tmp_path / "~nobody-here").resolve()
