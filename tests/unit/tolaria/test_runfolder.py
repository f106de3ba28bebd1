"""The run folder: one strict JSON line per epoch and event, summary and config files."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format

from esper.config import config_from_dict, load_config
from esper.leyline.v1 import control_pb2, run_pb2
from esper.tolaria.runfolder import RunFolder, read_jsonl

BIG = 12_345_678_901  # a 64-bit count, which plain proto JSON would write as a string


def _metrics(epoch: int, train_loss: float = 0.0, val_loss: float = 0.0) -> run_pb2.EpochMetrics:
    metrics = run_pb2.EpochMetrics(
        epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_accuracy=0.5, parameter_count=BIG
    )
    metrics.seed_stages["act1"] = "SEED_STAGE_DORMANT"
    return metrics


def test_creates_the_folder_with_parents(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "a" / "b")
    assert run.path.is_dir() and run.metrics_path == run.path / "metrics.jsonl"


def test_metrics_lines_keep_field_names_numbers_and_extras(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.append_metrics(_metrics(0, train_loss=1.5), elapsed_seconds=2.25)
    run.append_metrics(_metrics(1, train_loss=float("nan"), val_loss=float("inf")), elapsed_seconds=4.0)
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["epoch"] == 0 and first["train_loss"] == 1.5 and first["elapsed_seconds"] == 2.25
    assert first["parameter_count"] == 12_345_678_901  # a number, not the proto-JSON string
    assert first["hook_ms"] == 0.0  # unset fields are written too
    assert first["seed_stages"] == {"act1": "SEED_STAGE_DORMANT"}
    assert list(first)[:3] == ["epoch", "train_loss", "train_accuracy"]
    # Non-finite values stay strict JSON, as the proto JSON mapping writes them.
    assert second["train_loss"] == "NaN" and second["val_loss"] == "Infinity"
    parsed = json_format.ParseDict({k: v for k, v in second.items() if k != "elapsed_seconds"}, run_pb2.EpochMetrics())
    assert parsed.epoch == 1 and parsed.parameter_count == 12_345_678_901


def test_events_are_appended_in_order_with_their_kind_and_reason(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    transition = run_pb2.SeedTransition(
        seed_id="act1",
        from_stage="SEED_STAGE_DORMANT",
        to_stage="SEED_STAGE_GERMINATED",
        reason="plateau: val acc +0.001 over 2 epochs",
        command_id="c-1",
        epoch=4,
    )
    decision = control_pb2.AdaptationDecision(epoch=4, seed_id="act1", reason="waiting: warm-up")
    events = [
        run_pb2.RunEvent(run_id="r", sequence=1, seed_transition=transition),
        run_pb2.RunEvent(run_id="r", sequence=2, decision=decision),
        run_pb2.RunEvent(run_id="r", sequence=3, notice="Tamiyo unavailable: conservative mode"),
    ]
    events[0].event_time.FromSeconds(1_700_000_000)
    for event in events:
        run.append_event(event)
    rows = read_jsonl(run.events_path)
    assert [row["kind"] for row in rows] == ["seed_transition", "decision", "notice"]
    assert [row["sequence"] for row in rows] == [1, 2, 3]
    assert rows[0]["seed_transition"]["to_stage"] == "SEED_STAGE_GERMINATED"
    assert rows[0]["seed_transition"]["reason"] == "plateau: val acc +0.001 over 2 epochs"
    assert rows[0]["event_time"] == "2023-11-14T22:13:20Z"
    assert rows[1]["decision"]["reason"] == "waiting: warm-up"
    restored = json_format.ParseDict(rows[0], run_pb2.RunEvent(), ignore_unknown_fields=True)
    assert restored == events[0]


def test_a_torn_last_line_is_skipped_when_reading(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.append_metrics(_metrics(0))
    with run.metrics_path.open("a") as handle:
        handle.write('{"epoch": 1, "train_lo')
    assert [row["epoch"] for row in run.read_metrics()] == [0]


def test_summary_has_run_fields_and_extras(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    summary = run_pb2.RunSummary(final_test_accuracy=0.93, params_initial=1482, params_final=2000, epochs=30)
    run.write_summary(summary, run_id="r-1", dataset="digits", static=False, rollbacks=1)
    data = json.loads(run.summary_path.read_text())
    assert list(data)[:3] == ["run_id", "dataset", "static"]
    assert data["run_id"] == "r-1" and data["dataset"] == "digits" and data["static"] is False
    assert data["final_test_accuracy"] == 0.93 and data["params_final"] == 2000
    assert data["isolation_violations"] == 0 and data["rollbacks"] == 1
    assert run.read_summary() == data
    assert not list(tmp_path.glob("*.partial"))


def test_summary_from_an_assembled_mapping(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    data = run.write_summary(
        {"final_test_accuracy": 0.9, "run_id": "r-2", "host": {"input_shape": (64,)}, "loss": float("nan")},
        static=True,
    )
    assert list(data)[:2] == ["run_id", "static"]
    assert run.read_summary() == {
        "run_id": "r-2",
        "static": True,
        "final_test_accuracy": 0.9,
        "host": {"input_shape": [64]},
        "loss": "NaN",
    }


def test_config_json_reads_back_into_the_same_config(tmp_path: Path) -> None:
    config = load_config(None, {"run.dataset": "spirals", "run.out": str(tmp_path), "kasmina.ramp_steps": 7})
    run = RunFolder(tmp_path)
    run.write_config(config)
    assert config_from_dict(json.loads(run.config_path.read_text())) == config


def test_no_summary_yet(tmp_path: Path) -> None:
    assert RunFolder(tmp_path).read_summary() is None
    assert RunFolder(tmp_path).read_events() == []
