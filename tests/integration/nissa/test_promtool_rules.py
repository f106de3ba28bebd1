"""The real promtool checks deploy/prometheus's rule file and runs its rule tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from esper.nissa.alerts.rules import RULES

pytestmark = pytest.mark.integration

PROMTOOL = Path("/usr/bin/promtool")
REPO = Path(__file__).resolve().parents[3]
PROMETHEUS = REPO / "deploy" / "prometheus"

if not PROMTOOL.exists():
    pytest.skip(
        "promtool is not installed at /usr/bin/promtool (Debian package `prometheus`; `make setup` installs it)",
        allow_module_level=True,
    )


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROMTOOL), *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rule_file_with_every_rule() -> None:
    checked = promtool("check", "rules", PROMETHEUS / "rules" / "esper.rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in checked.stdout


def test_every_promtool_rule_test_passes() -> None:
    files = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert files
    tested = promtool("test", "rules", *files)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(files)


def test_promtool_fails_a_rule_test_whose_expectation_is_wrong(tmp_path: Path) -> None:
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    (tmp_path / "tests").mkdir()
    text = (PROMETHEUS / "tests" / "oona_queue_depth.test.yml").read_text(encoding="utf-8")
    assert "has 2500 messages waiting" in text
    (tmp_path / "tests" / "wrong.test.yml").write_text(text.replace("has 2500", "has 2499"), encoding="utf-8")
    tested = promtool("test", "rules", tmp_path / "tests" / "wrong.test.yml")
    assert tested.returncode != 0
    assert "has 2500 messages waiting" in tested.stdout + tested.stderr
