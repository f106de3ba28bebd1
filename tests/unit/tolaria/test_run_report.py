"""report.png and the text summary, rendered from a synthetic run folder."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from esper.leyline.v1 import control_pb2, run_pb2
from esper.tolaria.run_report import MARKS, _transitions, format_summary, render_report
from esper.tolaria.runfolder import RunFolder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _transition(epoch: int, seed: str, before: str, after: str, reason: str) -> run_pb2.SeedTransition:
    return run_pb2.SeedTransition(
        seed_id=seed,
        from_stage=f"SEED_STAGE_{before}",
        to_stage=f"SEED_STAGE_{after}",
        reason=reason,
        epoch=epoch,
    )


def write_synthetic_run(folder: Path, *, epochs: int = 20, static: bool = False) -> RunFolder:
    """A run folder as Tolaria would leave it: growth at epoch 5, a cull at 9, a fossilization at 12."""
    run = RunFolder(folder)
    params = 1482
    sequence = 0

    def emit(**payload: object) -> None:
        nonlocal sequence
        sequence += 1
        run.append_event(run_pb2.RunEvent(run_id="r-test", sequence=sequence, **payload))  # type: ignore[arg-type]

    for epoch in range(epochs):
        if not static and epoch == 5:
            emit(decision=control_pb2.AdaptationDecision(epoch=epoch, seed_id="act1", reason="plateau"))
            emit(seed_transition=_transition(epoch, "act1", "DORMANT", "GERMINATED", "plateau"))
            emit(seed_transition=_transition(epoch, "act2", "DORMANT", "GERMINATED", "plateau"))
            params += 600
        if not static and epoch == 9:
            emit(seed_transition=_transition(epoch, "act2", "EVALUATING", "CULLED", "eval gain -0.01"))
            params -= 300
        if not static and epoch == 12:
            emit(seed_transition=_transition(epoch, "act1", "FINE_TUNING", "FOSSILIZED", "gain +0.02"))
        lift = 0.0 if static or epoch < 6 else 0.03 * (1 - math.exp(-(epoch - 6) / 3))
        val = 0.9 - 0.5 * math.exp(-epoch / 2) + lift
        metrics = run_pb2.EpochMetrics(
            epoch=epoch,
            train_loss=2.0 * math.exp(-epoch / 4) + 0.1,
            train_accuracy=min(1.0, val + 0.04),
            val_loss=2.1 * math.exp(-epoch / 4) + 0.2 - lift,
            val_accuracy=val,
            parameter_count=params,
            hook_ms=1.0 + 0.1 * epoch,
        )
        run.append_metrics(metrics, elapsed_seconds=0.5 * (epoch + 1))
    summary = run_pb2.RunSummary(
        final_test_accuracy=0.9 if static else 0.925,
        best_val_accuracy=0.93,
        params_initial=1482,
        params_final=params,
        seeds_germinated=0 if static else 2,
        seeds_fossilized=0 if static else 1,
        seeds_culled=0 if static else 1,
        epochs=epochs,
        wall_seconds=10.5,
        hook_ms_p50=1.2,
        hook_ms_p95=2.9,
    )
    run.write_summary(
        summary, run_id="r-static" if static else "r-test", dataset="digits", static=static, hook_budget_ms=18.0
    )
    return run


def test_report_is_a_sensible_png(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run")
    path = render_report(run.path)
    assert path == run.report_path and path.exists()
    width, height = _png_size(path)
    assert 1000 <= width <= 3000 and 300 <= height <= 1500
    assert path.stat().st_size > 20_000


def test_report_with_a_baseline_folder_and_rerendering(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run")
    baseline = write_synthetic_run(tmp_path / "static", static=True)
    first = render_report(run.path, baseline_metrics=baseline.path).read_bytes()
    again = render_report(run.path, baseline_metrics=baseline.read_metrics())
    assert _png_size(again) == _png_size(run.report_path) and first[:8] == PNG_SIGNATURE


def test_report_of_a_run_that_stopped_before_any_epoch(tmp_path: Path) -> None:
    path = render_report(tmp_path / "empty")
    assert _png_size(path)[0] > 0


def test_transitions_are_read_from_events(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "run")
    found = _transitions(run.read_events())
    assert found == [
        (5.0, "SEED_STAGE_GERMINATED"),
        (5.0, "SEED_STAGE_GERMINATED"),
        (9.0, "SEED_STAGE_CULLED"),
        (12.0, "SEED_STAGE_FOSSILIZED"),
    ]
    assert {stage for _, stage in found} <= set(MARKS)


def test_format_summary_without_baseline(tmp_path: Path) -> None:
    summary = write_synthetic_run(tmp_path / "run").read_summary()
    assert summary is not None
    text = format_summary(summary)
    assert "92.50 %" in text and "93.00 %" in text
    assert "1,482 -> 1,782 (+300)" in text
    assert "germinated 2, fossilized 1, culled 1" in text
    assert "p50 1.20 ms, p95 2.90 ms (budget 18 ms)" in text
    assert "isolation violations   0" in text
    assert "baseline" not in text
    assert len(text.splitlines()) <= 24


@pytest.mark.parametrize(
    ("baseline_accuracy", "verdict", "points"),
    [(0.9, "BEAT", "+2.50 points"), (0.95, "did not beat", "-2.50 points"), (0.925, "tied with", "+0.00")],
)
def test_format_summary_against_static_baseline(
    tmp_path: Path, baseline_accuracy: float, verdict: str, points: str
) -> None:
    summary = write_synthetic_run(tmp_path / "run").read_summary()
    assert summary is not None
    baseline = {"final_test_accuracy": baseline_accuracy, "params_final": 1482, "static": True}
    line = format_summary(summary, baseline).splitlines()[-1]
    assert verdict in line and points in line and "1,782 vs 1,482 parameters" in line


def test_format_summary_uses_a_recorded_baseline_and_shows_rollbacks() -> None:
    summary = {
        "run_id": "r",
        "dataset": "spirals",
        "final_test_accuracy": 0.97,
        "params_final": 900,
        "rollbacks": 1,
        "baseline": {"final_test_accuracy": 0.93, "params_final": 371},
    }
    text = format_summary(summary)
    assert "rollbacks              1" in text
    assert "BEAT it by +4.00 points" in text.splitlines()[-1]
