"""heuristic-v1's transitions from scripted runs, for Simic's tests."""

from __future__ import annotations

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
