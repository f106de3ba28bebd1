"""The wheel built from pyproject.toml holds the generated, server and client code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def build_wheel(out_dir: Path) -> Path:
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
            str(out_dir),
            str(ROOT),
        ],
        check=True,
        cwd=out_dir,
    )
    (wheel,) = out_dir.glob("esper-*.whl")
    return wheel


def test_wheel_contains_all_three_source_folders(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "esper/__init__.py" in names  # the SDK face (server/)
    assert "esper/leyline/v1/karn_pb2.py" in names  # generated/
    assert "esper/leyline/v1/karn_pb2.pyi" in names
    assert "esper/leyline/v1/karn_pb2_grpc.py" in names
    assert "esper/clients/__init__.py" in names  # clients/
    assert "esper/cli/main.py" in names
    assert not any(name.startswith(("generated/", "server/", "clients/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "esper = esper.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_imports_the_sdk_and_contracts(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import esper, esper.errors\n"
        "from esper.leyline.v1 import karn_pb2\n"
        f"assert esper.__file__.startswith({str(target)!r})\n"
        f"assert karn_pb2.__file__.startswith({str(target)!r})\n"
        "try:\n    esper.wrap\nexcept NotImplementedError:\n    pass\n"
    )
    # The unpacked wheel goes first on the path, ahead of the editable install.
    subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{code}"],
        check=True,
        cwd=tmp_path,
    )
