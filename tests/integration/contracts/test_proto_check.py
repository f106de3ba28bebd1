"""`make proto-check`'s pieces catch a breaking contract change, committed or not."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUF = ROOT / ".venv" / "bin" / "buf"
ALERT = Path("proto/esper/leyline/v1/alert.proto")
NAME_FIELD = '  // Rule name, e.g. "kasmina_isolation_violation".\n  string name = 2;\n'

pytestmark = pytest.mark.integration


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone of main with the tree's current proto/ committed on top, and the venv linked in."""
    repo = tmp_path / "repo"
    _git(tmp_path, "clone", "-q", "--branch", "main", str(ROOT), str(repo))
    shutil.rmtree(repo / "proto")
    shutil.copytree(ROOT / "proto", repo / "proto")
    _git(repo, "add", "-A", "proto")
    if _git(repo, "status", "--porcelain"):
        _git(repo, "commit", "-qm", "current contracts")
    (repo / ".venv").symlink_to(ROOT / ".venv")
    return repo


def _breaking(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "tools/proto_breaking.sh"], cwd=repo, capture_output=True, text=True)


def _drop_alert_name(repo: Path) -> None:
    text = (repo / ALERT).read_text()
    assert NAME_FIELD in text
    (repo / ALERT).write_text(text.replace(NAME_FIELD, ""))


def test_unchanged_contracts_pass(clone: Path) -> None:
    result = _breaking(clone)
    assert result.returncode == 0, result.stdout + result.stderr


def test_uncommitted_breaking_change_fails(clone: Path) -> None:
    _drop_alert_name(clone)
    result = _breaking(clone)
    assert result.returncode != 0
    assert 'field "2" with name "name"' in result.stdout + result.stderr


def test_breaking_change_already_on_main_fails(clone: Path) -> None:
    _drop_alert_name(clone)
    _git(clone, "commit", "-qam", "drop Alert.name")
    result = _breaking(clone)
    assert result.returncode != 0
    assert 'field "2" with name "name"' in result.stdout + result.stderr


def test_additive_change_passes(clone: Path) -> None:
    text = (clone / ALERT).read_text()
    marker = "  google.protobuf.Timestamp resolve_time = 10;\n"
    added = "  // Runbook link.\n  string runbook_url = 11;\n"
    (clone / ALERT).write_text(text.replace(marker, marker + added))
    _git(clone, "commit", "-qam", "add Alert.runbook_url")
    result = _breaking(clone)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_rejects_an_undocumented_field(clone: Path) -> None:
    text = (clone / ALERT).read_text()
    marker = "  google.protobuf.Timestamp resolve_time = 10;\n"
    (clone / ALERT).write_text(text.replace(marker, marker + "  string undocumented = 11;\n"))
    result = subprocess.run([str(BUF), "lint"], cwd=clone, capture_output=True, text=True)
    assert result.returncode != 0
    assert "undocumented" in result.stdout
