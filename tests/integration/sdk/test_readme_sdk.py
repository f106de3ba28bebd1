"""The README's SDK example is a complete program: run exactly as written, it grows a model and saves it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration


def _sdk_program() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The SDK", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's SDK section has no python block"
    return found.group(1)


def test_the_readme_sdk_example_grows_saves_and_reloads_a_model(tmp_path: Path) -> None:
    program = tmp_path / "grow.py"
    program.write_text(_sdk_program(), encoding="utf-8")
    # Its own home, so kernels compile into a fresh cache here rather than into ~/.cache.
    env = {**os.environ, "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(program)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "grown" / "model.pt").is_file() and (tmp_path / "grown" / "lineage.json").is_file()
    grew = re.search(r"parameters (\d+) -> (\d+)", done.stdout)
    assert grew and int(grew.group(2)) > int(grew.group(1)), done.stdout
