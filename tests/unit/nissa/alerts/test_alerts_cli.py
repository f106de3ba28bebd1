"""`esper alerts` without a server: usage errors and --render-rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli.main import main


def test_alerts_without_a_mesh_or_with_one_lacking_nissa_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["alerts"])
    assert exited.value.code == 2
    mesh = tmp_path / "mesh.json"
    mesh.write_text(json.dumps({"urza": "127.0.0.1:1"}), encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["alerts", "--mesh", str(mesh)])
    assert "the mesh has no nissa server" in capsys.readouterr().err


def test_render_rules_prints_the_committed_rule_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--render-rules"]) == 0
    rule_file = Path(__file__).resolve().parents[4] / "deploy" / "prometheus" / "rules" / "esper.rules.yml"
    assert capsys.readouterr().out == rule_file.read_text(encoding="utf-8")
