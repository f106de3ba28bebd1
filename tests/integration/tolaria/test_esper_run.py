"""`esper run` end to end, embedded: a real compile and validation, a seed grown to a terminal stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from esper.cli.main import main
from esper.kasmina import load_model

pytestmark = pytest.mark.integration

SUMMARY_KEYS = {
    "run_id",
    "final_test_accuracy",
    "best_val_accuracy",
    "params_initial",
    "params_final",
    "seeds_germinated",
    "seeds_fossilized",
    "seeds_culled",
    "epochs",
    "wall_seconds",
    "hook_ms_p50",
    "hook_ms_p95",
    "isolation_violations",
}


def _fast_config(tmp_path: Path) -> Path:
    """One template, a short lifecycle and an eager Tamiyo, so 10 epochs see a seed through."""
    config = {
        # A seed must grow within 10 epochs: wait for its kernel (the deterministic mode).
        "assets": {
            "data_dir": str(tmp_path / "assets"),
            "template_ids": ["conv3x3_relu"],
            "pipelines": ["standard"],
            "wait_for_kernels": True,
        },
        "kasmina": {"ramp_steps": 10, "training_min_steps": 5, "stabilization_steps": 5, "fine_tuning_min_steps": 5},
        "tamiyo": {
            "warmup_epochs": 1,
            "patience": 1,
            "min_delta": 0.5,
            "min_epochs_to_finish": 1,
            "min_eval_gain": -1.0,
            "fossilize_min_improvement": 0.0,
            "harm_threshold": 1.0,
        },
    }
    path = tmp_path / "fast.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    tmp_path = tmp_path_factory.mktemp("esper-run")
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--dataset",
            "digits",
            "--epochs",
            "10",
            "--seed",
            "3",
            "--out",
            str(out),
            "--config",
            str(_fast_config(tmp_path)),
            "--quiet",
        ]
    )
    assert code == 0
    return out, json.loads((out / "summary.json").read_text())


def test_the_run_folder_holds_everything(run_folder: tuple[Path, dict[str, object]]) -> None:
    out, summary = run_folder
    for name in ("summary.json", "metrics.jsonl", "events.jsonl", "lineage.json", "model.pt", "report.png"):
        assert (out / name).is_file(), name
    assert set(summary) >= SUMMARY_KEYS
    assert summary["epochs"] == 10 and summary["isolation_violations"] == 0
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 10


def test_a_seed_went_from_germination_to_a_terminal_stage(run_folder: tuple[Path, dict[str, object]]) -> None:
    out, summary = run_folder
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    to_stages = [e["seed_transition"]["to_stage"] for e in events if e["kind"] == "seed_transition"]
    assert "SEED_STAGE_GERMINATED" in to_stages
    assert {"SEED_STAGE_FOSSILIZED", "SEED_STAGE_CULLED"} & set(to_stages)
    assert all(e["seed_transition"]["reason"] for e in events if e["kind"] == "seed_transition")
    assert summary["seeds_germinated"] >= 1


def test_the_saved_model_reloads_into_its_recorded_architecture(
    run_folder: tuple[Path, dict[str, object]],
) -> None:
    out, summary = run_folder
    weights = torch.load(out / "model.pt", weights_only=True)
    model = load_model(out).eval()
    assert set(model.state_dict()) >= set(weights)
    from esper.data import load_dataset

    data = load_dataset("digits", seed=3)
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert accuracy == pytest.approx(summary["final_test_accuracy"], abs=1e-6)
    assert sum(p.numel() for p in model.parameters()) == summary["params_final"]
    lineage = json.loads((out / "lineage.json").read_text())
    fossils = [seed for seed in lineage["seeds"] if seed["stage"] == "FOSSILIZED"]
    # The saved state may be an earlier, better validated one than the last (summary["saved"]).
    assert len(fossils) <= summary["seeds_fossilized"]


def test_the_summary_says_which_state_was_saved_and_lists_rollbacks(
    run_folder: tuple[Path, dict[str, object]],
) -> None:
    _, summary = run_folder
    saved = summary["saved"]
    assert isinstance(saved, dict) and 0 <= saved["epoch"] < summary["epochs"]
    assert saved["val_metric"] >= saved["final_val_metric"] and saved["reason"]
    assert isinstance(summary["rollback_events"], list)
    assert len(summary["rollback_events"]) == summary["rollbacks"]


def test_growth_is_compared_with_the_static_baseline(run_folder: tuple[Path, dict[str, object]]) -> None:
    out, summary = run_folder
    assert (out / "baseline" / "summary.json").is_file()
    assert isinstance(summary["growth_beat_static"], bool)
    baseline = json.loads((out / "baseline" / "summary.json").read_text())
    assert baseline["static"] is True and baseline["params_final"] == summary["params_initial"]
