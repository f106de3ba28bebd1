"""What the Dockerfile copies into the image is enough to build and install Esper: the wheel built from
exactly those paths holds the three source folders and the `esper` entry point."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.deploy import DOCKERFILE, ROOT

pytestmark = pytest.mark.integration


def copied_paths() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    paths: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not words[1].startswith("--from"):
            paths.extend(words[1:-1])
    return paths


def test_the_copied_paths_build_a_complete_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for path in copied_paths():
        source = ROOT / path
        if source.is_dir():
            shutil.copytree(source, context / path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, context / path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(context),
        ],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("esper-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "esper/cli/main.py",
        "esper/leyline/v1/urza_pb2.py",
        "esper/clients/__init__.py",
        "esper/mesh/ports.py",
    } <= names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "esper = esper.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_torch_pin_the_build_reads_is_there() -> None:
    # The Dockerfile takes torch's line from requirements.txt with exactly this grep.
    done = subprocess.run(["grep", "-E", "^torch==", "requirements.txt"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0
    assert re.fullmatch(r"torch==\d+\.\d+\.\d+\n", done.stdout)
