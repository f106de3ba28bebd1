"""heuristic-v1's transitions from scripted runs, and what a Simic data folder stored, for Simic's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.leyline.v1 import policy_pb2
from tests.support.tamiyo import PLATEAU, FakeKernels, SeedSimulator, kernel, make_controller, run_epochs

ACCURACIES = [*PLATEAU, 0.6, 0.6, 0.61, 0.62, 0.62, 0.62, 0.62, 0.62]


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[policy_pb2.PolicyTransition] = []

    def record(self, transition: policy_pb2.PolicyTransition) -> None:
        self.transitions.append(transition)


def heuristic_transitions(runs: int = 2) -> list[policy_pb2.PolicyTransition]:
    """Every boundary of `runs` scripted heuristic-v1 runs (germinations, lifecycle steps, waits)."""
    recorder = Recorder()
    for run in range(runs):
        controller = make_controller(FakeKernels([kernel("k1"), kernel("k2", params=900, latency_ms=0.1)]))
        controller.attach_transitions(recorder)
        run_epochs(controller, SeedSimulator(run_id=f"run-{run}", eval_gain=0.02), ACCURACIES)
    return recorder.transitions


def stored_transitions(data_dir: Path) -> list[Any]:
    """Rows (run_id, policy_id, fallback) of every transition the Simic data folder `data_dir` stored."""
    from sqlalchemy import select

    from esper.simic.config import SimicConfig
    from esper.simic.db import SimicDatabase, transitions

    database = SimicDatabase.open(SimicConfig(data_dir=str(data_dir)).resolved_database_url)
    try:
        with database.read() as conn:
            columns = (transitions.c.run_id, transitions.c.policy_id, transitions.c.fallback)
            return list(conn.execute(select(*columns)).all())
    finally:
        database.close()
