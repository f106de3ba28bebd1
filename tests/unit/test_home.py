"""Servers keep their default state under one git-ignored root: $ESPER_HOME, else ./.esper."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from esper.cli.main import build_parser
from esper.home import state_dir

REPO = Path(__file__).resolve().parents[2]


def test_the_root_is_esper_home_else_dot_esper(tmp_path: Path) -> None:
    assert state_dir("urza", {}) == Path(".esper") / "urza"
    assert state_dir("urza", {"ESPER_HOME": str(tmp_path)}) == tmp_path / "urza"


def test_the_default_root_is_ignored_by_git() -> None:
    checked = subprocess.run(
        ["git", "check-ignore", "-q", ".esper/urza/urza.db"], cwd=REPO, check=False, capture_output=True
    )
    assert checked.returncode == 0


@pytest.mark.parametrize("name", ["urza", "simic", "nissa", "tolaria"])
def test_a_server_started_without_data_flags_writes_only_under_the_root(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("ESPER_HOME", str(home))
    extra = ["--no-web"] if name == "nissa" else []
    args = build_parser().parse_args(["serve", name, *extra])
    served = args.serve_target.build(args)
    if served.close is not None:
        served.close()
    assert list(workdir.iterdir()) == []
    # Tolaria makes its runs folder with its first run; the others open their stores at once.
    written = [path.name for path in home.iterdir()] if home.exists() else []
    assert written == ([] if name == "tolaria" else [name])
