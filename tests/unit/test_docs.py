"""The README is the front door and every document points at things that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_FOLDERS = ("server/", "clients/", "proto/", "generated/", "tests/", "bench/", "tools/", "deploy/", "docs/")
_LINK = re.compile(r"\]\(([^)#\s]+)")
_CODE = re.compile(r"`([^`\s]+)`")


def _cited_paths_outside(document: Path) -> list[Path]:
    """The files `document` links to or names (in backticks, from a top-level folder) that do not exist."""
    text = document.read_text(encoding="utf-8")
    cited = [(document.parent / link).resolve() for link in _LINK.findall(text) if "://" not in link]
    for token in _CODE.findall(text):
        path = token.rstrip(".,:;")
        if path.startswith(TOP_FOLDERS) and "<" not in path and "*" not in path and "{" not in path:
            cited.append(ROOT / path)
    return [path for path in cited if not path.exists()]


def _cited_paths(document: Path) -> list[str]:
    return [str(path) for path in _cited_paths_outside(document)]


def test_the_readme_is_under_200_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 200


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_file_a_document_cites_is_in_the_repository(document: Path) -> None:
    assert _cited_paths(document) == []


def test_the_check_catches_a_missing_file(tmp_path: Path) -> None:
    # A check that cannot fail proves nothing: a made-up path and a dead link are caught.
    probe = tmp_path / "probe.md"
    probe.write_text("See `server/esper/no_such_module.py` and [the guide](no_such_guide.md).\n", encoding="utf-8")
    missing = [Path(path).name for path in _cited_paths_outside(probe)]
    assert missing == ["no_such_guide.md", "no_such_module.py"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_document_cites_the_design_notes_outside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert "HLD" not in text and "seed 004" not in text


def test_every_deep_dive_the_readme_promises_is_linked() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("lifecycle", "assets", "mesh", "observability", "deploy", "benchmarks", "development"):
        assert f"(docs/{name}.md)" in readme
