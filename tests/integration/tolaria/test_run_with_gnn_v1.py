"""`esper run --policy gnn-v1`, embedded: the shipped learned policy decides every boundary, with no fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli.main import main
from tests.support.transitions import stored_transitions

pytestmark = pytest.mark.integration


def test_a_run_with_the_shipped_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--dataset",
            "spirals",
            "--host-width",
            "4",
            "--epochs",
            "8",
            "--policy",
            "gnn-v1",
            "--out",
            str(out),
            "--no-baseline",
            "--quiet",
            "--experience-dir",
            str(tmp_path / "experience"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["config"]["tamiyo"]["policy_id"] == "gnn-v1"
    # Every boundary's transition was recorded into the replay store, decided by gnn-v1 itself.
    rows = stored_transitions(tmp_path / "experience")
    assert len(rows) == 8
    assert {(row.policy_id, bool(row.fallback)) for row in rows} == {("gnn-v1", False)}
