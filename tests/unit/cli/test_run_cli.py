"""`esper run` refuses bad input before training, with a message naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from esper.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(["run", "--quiet", *args])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_an_unknown_config_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("run:\n  epochz: 3\n")
    code, err = _run(capsys, "--config", str(config), "--out", str(tmp_path / "o"))
    assert code != 0
    assert "run.epochz" in err
    assert not (tmp_path / "o" / "metrics.jsonl").exists()


def test_a_wrong_type_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("tamiyo:\n  patience: soon\n")
    code, err = _run(capsys, "--config", str(config), "--out", str(tmp_path / "o"))
    assert code != 0
    assert "tamiyo.patience" in err


def test_an_npz_with_a_missing_array_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.npz"
    np.savez(
        data, x_train=np.zeros((10, 3), np.float32), y_train=np.zeros(10, np.int64), x_test=np.zeros((4, 3), np.float32)
    )
    code, err = _run(capsys, "--dataset", f"npz:{data}", "--out", str(tmp_path / "o"), "--static")
    assert code != 0
    assert "y_test" in err


def test_an_npz_with_nan_features_is_refused_naming_the_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x_train = np.zeros((10, 3), np.float32)
    x_train[2, 1] = np.nan
    data = tmp_path / "d.npz"
    np.savez(
        data, x_train=x_train, y_train=np.arange(10) % 2, x_test=np.zeros((4, 3), np.float32), y_test=np.arange(4) % 2
    )
    code, err = _run(capsys, "--dataset", f"npz:{data}", "--out", str(tmp_path / "o"), "--static")
    assert code != 0
    assert "x_train" in err and "NaN" in err


def test_an_unknown_dataset_lists_the_valid_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--dataset", "cifar", "--out", str(tmp_path / "o"), "--static")
    assert code != 0
    assert "digits" in err and "mnist5k" in err


def test_a_run_needs_an_out_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--static")
    assert code != 0
    assert "run.out" in err


def test_a_static_run_writes_its_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "static"
    code, _ = _run(capsys, "--dataset", "spirals", "--epochs", "2", "--static", "--out", str(out), "--json")
    assert code == 0
    assert (out / "summary.json").is_file() and (out / "report.png").is_file()


def test_nproc_must_be_at_least_one_and_refuses_the_mesh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--nproc", "0", "--out", str(tmp_path / "o"), "--static")
    assert code != 0 and "--nproc must be at least 1" in err
    code, err = _run(capsys, "--nproc", "2", "--mesh", str(tmp_path / "mesh.json"), "--out", str(tmp_path / "o"))
    assert code != 0 and "--nproc" in err and "--mesh" in err
    assert not (tmp_path / "o").exists()


def test_one_process_is_an_ordinary_run_with_world_size_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "one"
    code, _ = _run(capsys, "--nproc", "1", "--dataset", "spirals", "--epochs", "1", "--static", "--out", str(out))
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["world_size"] == 1


def test_the_ranks_run_the_same_command_without_nproc() -> None:
    from esper.cli.run import _without_nproc

    line = ["-v", "run", "--nproc", "2", "--dataset", "digits", "--nproc=3", "--out", "o"]
    assert _without_nproc(line) == ["-v", "run", "--dataset", "digits", "--out", "o"]
