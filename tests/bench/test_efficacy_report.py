"""The efficacy bench's own logic: the static grid at a parameter count, results, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.efficacy_report import (
    BEST_STATIC,
    ESPER,
    STATIC,
    ResultStore,
    cnn_parameters,
    gromo_start_width,
    host_parameters,
    mlp_parameters,
    never_worse,
    render_table,
    select_on_validation,
    static_grid,
    summarize,
    width_for,
)
from esper.hosts import build_host
from esper.hosts.spec import HostSpec


@pytest.mark.parametrize(
    ("kind", "shape", "classes", "width", "depth"),
    [
        ("mlp", (2,), 3, 3, 2),
        ("mlp", (6,), 2, 16, 1),
        ("mlp", (64,), 10, 7, 3),
        ("cnn", (1, 8, 8), 10, 3, 2),
        ("cnn", (1, 8, 8), 10, 5, 3),
        ("cnn", (1, 28, 28), 10, 2, 1),
    ],
)
def test_the_parameter_count_formula_is_the_built_hosts(
    kind: str, shape: tuple[int, ...], classes: int, width: int, depth: int
) -> None:
    host = build_host(HostSpec(kind, shape, classes, width, depth))  # type: ignore[arg-type]
    assert host_parameters(kind, shape, classes, width, depth) == sum(p.numel() for p in host.parameters())


def test_the_width_at_a_count_is_the_closest() -> None:
    # 2 -> w -> w -> 3: w^2 + 7w + 3 parameters; 418 lies between w=16 (371) and w=17 (411).
    assert [mlp_parameters(2, 3, w, 2) for w in (16, 17)] == [371, 411]
    assert width_for("mlp", (2,), 3, 2, 418) == 17
    assert width_for("mlp", (2,), 3, 2, 380) == 16
    assert width_for("mlp", (2,), 3, 2, 5) == 1  # below the smallest host: the smallest


def test_the_grid_has_one_host_per_depth_the_input_allows_near_the_target() -> None:
    grid = static_grid("cnn", (1, 8, 8), 10, 1000, depths=(1, 2, 3, 4))
    assert [member.depth for member in grid] == [1, 2, 3]  # 8x8 images take three pooling blocks
    for member in grid:
        assert member.params == cnn_parameters((1, 8, 8), 10, member.width, member.depth)
        below = cnn_parameters((1, 8, 8), 10, member.width - 1, member.depth) if member.width > 1 else 0
        above = cnn_parameters((1, 8, 8), 10, member.width + 1, member.depth)
        assert abs(member.params - 1000) <= min(abs(below - 1000), abs(above - 1000))


def test_the_grid_choice_is_made_on_validation_not_test() -> None:
    results = [
        {"depth": 1, "width": 40, "params": 1000, "val_accuracy": 0.90, "test_accuracy": 0.99},
        {"depth": 2, "width": 20, "params": 990, "val_accuracy": 0.93, "test_accuracy": 0.91},
        {"depth": 3, "width": 14, "params": 980, "val_accuracy": 0.93, "test_accuracy": 0.92},
    ]
    # Best validation; on a tie the smaller network.
    assert select_on_validation(results)["depth"] == 3
    with pytest.raises(ValueError):
        select_on_validation([])


def test_gromo_starts_near_the_initial_hosts_size() -> None:
    # digits' default CNN has 244 parameters; a 64 -> w -> w -> 10 MLP of width 3 has 247.
    assert cnn_parameters((1, 8, 8), 10, 3, 2) == 244
    assert gromo_start_width(64, 10, 244) == 3


def _cell(task: str, method: str, seed: int, accuracy: float, params: int = 100, wall: float = 2.0) -> dict:
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "test_accuracy": accuracy,
        "val_accuracy": accuracy,
        "params": params,
        "wall_seconds": wall,
    }


def _cells(*cells: dict) -> dict[str, dict]:
    return {f"{c['task']}/{c['method']}/{c['seed']}": c for c in cells}


def test_never_worse_is_the_worst_per_seed_difference_on_shared_seeds() -> None:
    cells = _cells(
        _cell("t", ESPER, 0, 0.90),
        _cell("t", STATIC, 0, 0.85),
        _cell("t", ESPER, 1, 0.80),
        _cell("t", STATIC, 1, 0.83),
        _cell("t", ESPER, 2, 0.10),  # no static twin yet: not counted
    )
    assert never_worse(cells, "t") == pytest.approx(-0.03)
    assert never_worse(cells, "other") is None


def test_the_table_has_mean_std_params_wall_ratio_and_never_worse_in_esper_row_only() -> None:
    cells = _cells(
        _cell("t", STATIC, 0, 0.80, params=50, wall=1.0),
        _cell("t", STATIC, 1, 0.70, params=50, wall=1.0),
        _cell("t", ESPER, 0, 0.90, params=120, wall=6.0),
        _cell("t", ESPER, 1, 0.80, params=140, wall=9.0),
        _cell("t", BEST_STATIC, 0, 0.91, params=118, wall=2.0),
        _cell("t", BEST_STATIC, 1, 0.85, params=141, wall=3.0),
    )
    row = summarize(cells, "t", ESPER)
    assert row is not None
    assert (row.seeds, row.accuracy_mean, row.params_mean) == (2, pytest.approx(0.85), 130)
    assert row.accuracy_std == pytest.approx(0.0707107, rel=1e-5)  # sample std over seeds
    assert row.wall_ratio == pytest.approx(3.0)  # 6/2 and 9/3
    table = render_table(cells, ["t"]).splitlines()
    assert len(table) == 2 + 3
    esper_row = next(line for line in table if "| Esper |" in line)
    assert "85.00 ± 7.07" in esper_row and "| 130 |" in esper_row and "| 3.00 |" in esper_row
    assert esper_row.rstrip().endswith("| +10.00 |")  # worst seed: +10 (0.90-0.80 and 0.80-0.70)
    static_row = next(line for line in table if "static initial host" in line)
    assert static_row.rstrip().endswith("|  |")
    assert "| 1.00 |" in next(line for line in table if "best static" in line)


def test_results_are_written_per_cell_and_resumed(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    settings = {"epochs": 40, "batch_size": 64, "learning_rate": 0.01}
    store = ResultStore(path, settings)
    store.put(_cell("t", STATIC, 0, 0.8))
    assert json.loads(path.read_text())["cells"]["t/static/0"]["test_accuracy"] == 0.8
    store.put(_cell("t", ESPER, 0, 0.9))
    resumed = ResultStore(path, settings)
    assert resumed.get("t", ESPER, 0) == store.get("t", ESPER, 0)
    assert resumed.get("t", ESPER, 1) is None
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="settings"):
        ResultStore(path, {**settings, "epochs": 10})
