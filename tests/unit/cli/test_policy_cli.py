"""`esper policy list|show|train` on a local replay store, and `esper run --policy` refusing what it cannot load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.leyline.v1 import simic_pb2
from esper.simic.config import TrainingConfig
from esper.simic.embedded import local_simic
from tests.support.transitions import heuristic_transitions


def _esper(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_names_every_policy_with_its_kind_and_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _esper(capsys, "policy", "list", "--json", "--experience-dir", str(tmp_path))
    assert code == 0
    entries = {entry["policy_id"]: entry for entry in json.loads(out)}
    assert entries["heuristic-v1"]["kind"] == "heuristic"
    assert [entry["policy_id"] for entry in entries.values() if entry["default"]] == ["heuristic-v1"]
    for entry in entries.values():
        assert {"policy_id", "kind", "default"} <= set(entry)
        assert entry["kind"] in ("heuristic", "learned")


def test_train_then_list_and_show_a_policy_of_the_local_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simic = local_simic(str(tmp_path), training=TrainingConfig(gate_suite=""))
    try:
        simic.record_transitions(simic_pb2.RecordTransitionsRequest(transitions=heuristic_transitions(runs=2)))
    finally:
        simic.close()
    code, out, err = _esper(
        capsys,
        "policy",
        "train",
        "--steps",
        "10",
        "--id",
        "local-bc",
        "--experience-dir",
        str(tmp_path),
        "--json",
        "--gate-suite",
        "none",
    )
    assert code == 0, err
    job = json.loads(out)
    assert (job["status"], job["policy_id"], job["published"]) == ("SUCCEEDED", "local-bc", False)
    code, out, _ = _esper(capsys, "policy", "list", "--json", "--experience-dir", str(tmp_path))
    entry = {e["policy_id"]: e for e in json.loads(out)}["local-bc"]
    assert (entry["kind"], entry["source"], entry["default"]) == ("learned", "simic", False)
    code, out, _ = _esper(capsys, "policy", "show", "local-bc", "--experience-dir", str(tmp_path), "--json")
    card = json.loads(out)["card"]
    assert card["recipe"]["algorithm"] == "behaviour_cloning" and card["feature_schema_version"] == 1
    code, _, err = _esper(capsys, "policy", "train", "--no-wait", "--experience-dir", str(tmp_path))
    assert code == 2 and "--no-wait" in err
    code, out, _ = _esper(capsys, "policy", "show", "heuristic-v1", "--experience-dir", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["kind"] == "heuristic"


def test_show_of_an_unknown_policy_says_it_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _esper(capsys, "policy", "show", "simic-404", "--experience-dir", str(tmp_path))
    assert code == 1
    assert "POLICY_NOT_FOUND" in err


def test_run_refuses_a_policy_it_cannot_find(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _esper(
        capsys,
        "run",
        "--quiet",
        "--policy",
        "simic-404",
        "--out",
        str(tmp_path / "o"),
        "--no-baseline",
        "--experience-dir",
        str(tmp_path / "exp"),
        "--epochs",
        "1",
    )
    assert code == 1
    assert "POLICY_NOT_FOUND" in err
    code, _, err = _esper(
        capsys,
        "run",
        "--quiet",
        "--policy",
        str(tmp_path / "missing.safetensors"),
        "--out",
        str(tmp_path / "o2"),
        "--no-baseline",
        "--experience-dir",
        str(tmp_path / "exp"),
        "--epochs",
        "1",
    )
    assert code == 1
    assert "missing" in err


def test_the_shipped_gnn_v1_is_listed_learned_and_not_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _esper(capsys, "policy", "list", "--json", "--experience-dir", str(tmp_path))
    entry = {e["policy_id"]: e for e in json.loads(out)}["gnn-v1"]
    assert (code, entry["kind"], entry["default"]) == (0, "learned", False)
    code, out, _ = _esper(capsys, "policy", "show", "gnn-v1", "--experience-dir", str(tmp_path), "--json")
    card = json.loads(out)["card"]
    assert code == 0 and card["validation"]["gate_passed"] is True
    assert card["recipe"]["ppo"]["reward"]["parameter_cost"] == 0.5  # the reward the recipe trains with today
