"""The SDK example of docs/sdk.md runs exactly as written: a user's transformer, DataLoaders, a loss."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parents[3] / "docs" / "sdk.md"
MARKER = "<!-- sdk-example -->"


def documented_example() -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"{DOC} has no python block after {MARKER}"
    return found.group(1)


def test_the_documented_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh machine: empty kernel cache, the run folder under the working directory.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    namespace: dict[str, object] = {"__name__": "sdk_example"}
    exec(compile(documented_example(), str(DOC), "exec"), namespace)

    result = namespace["result"]
    history = result.history  # type: ignore[attr-defined]
    summary = result.summary  # type: ignore[attr-defined]
    assert [epoch["epoch"] for epoch in history] == [0, 1, 2]
    assert history[-1]["val_metric"] < history[0]["val_metric"]  # bits per character: lower is better
    assert summary["metric_name"] == "bits_per_character"
    assert summary["metric_direction"] == "METRIC_DIRECTION_LOWER_IS_BETTER"
    assert summary["best_val_metric"] == pytest.approx(min(epoch["val_metric"] for epoch in history))
    run = tmp_path / "runs" / "sdk-example"
    for name in ("summary.json", "metrics.jsonl", "events.jsonl", "model.pt", "lineage.json", "report.png"):
        assert (run / name).is_file(), name
    assert json.loads((run / "summary.json").read_text())["best_val_metric"] == pytest.approx(
        summary["best_val_metric"]
    )
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    lineage = json.loads((run / "saved" / "lineage.json").read_text())
    assert lineage["host"]["class"].endswith("TinyLM")
    assert {entry["descriptor"]["inputKind"] for entry in lineage["seeds"]} == {"INPUT_KIND_CAUSAL_SEQUENCE"}
