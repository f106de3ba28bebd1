"""What Tamiyo, Tezzeret and Urza record: decisions by action, compile attempts/retries/failures, downloads,
compile jobs by state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from esper.leyline.v1 import kernel_pb2, lifecycle_pb2, urza_pb2
from esper.observability import metrics
from esper.observability.collectors import CompileJobMetrics
from esper.tamiyo.controller import decision_action
from esper.tezzeret.config import FAST, TezzeretConfig
from esper.tezzeret.pipelines import CompiledKernel, CompileError
from esper.tezzeret.worker import TezzeretWorker
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub
from tests.support.tamiyo import PLATEAU, FakeKernels, SeedSimulator, kernel, make_controller, run_epochs
from tests.support.tezzeret import StubCompiler, mlp_ir, submit


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[UrzaHub]:
    hub = UrzaHub.open(UrzaConfig(data_dir=str(tmp_path / "urza"), compile_max_attempts=3))
    yield hub
    hub.close()


def _worker(hub: UrzaHub, tmp_path: Path, compiler: object) -> TezzeretWorker:
    config = TezzeretConfig(
        worker_id="metrics-test",
        wal_dir=tmp_path / "wal",
        work_dir=tmp_path / "work",
        hardware_target="cpu_test",
        pipelines=(FAST,),
    )
    return TezzeretWorker(hub, config, compiler=compiler)  # type: ignore[arg-type]


def test_decision_action_is_the_command_type_name_or_wait() -> None:
    assert decision_action(lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION) == "REQUEST_GERMINATION"
    assert decision_action(lifecycle_pb2.COMMAND_TYPE_UNSPECIFIED) == "WAIT"


def test_tamiyo_counts_every_decision_by_action_and_times_each_step_once() -> None:
    actions = ("WAIT", "REQUEST_GERMINATION", "ADVANCE")
    before = {action: _sample("esper_tamiyo_decisions_total", action=action) for action in actions}
    steps_before = _sample("esper_tamiyo_step_duration_seconds_count")
    controller = make_controller(FakeKernels([kernel("k1")]))
    sim = SeedSimulator()
    sim.seeds["net.3"].dead = 0.4
    responses = run_epochs(controller, sim, PLATEAU[:-1])
    sim.train_epoch()
    last = sim.request(len(PLATEAU) - 1, PLATEAU[-1])
    responses.append(controller.step(last))
    assert controller.step(last) == responses[-1]  # a retried request is answered, not decided again

    made = Counter(decision_action(d.command_type) for r in responses for d in r.decisions)
    assert made["REQUEST_GERMINATION"] == 1 and made["WAIT"] >= 1
    after = {action: _sample("esper_tamiyo_decisions_total", action=action) for action in actions}
    assert {action: after[action] - before[action] for action in actions} == {a: made[a] for a in actions}
    assert _sample("esper_tamiyo_step_duration_seconds_count") - steps_before == len(PLATEAU)


def test_tezzeret_counts_attempts_retries_and_failures_of_a_job_that_keeps_failing(
    hub: UrzaHub, tmp_path: Path
) -> None:
    def failing(*args: object, **kwargs: object) -> CompiledKernel:
        raise CompileError("the compiler ran out of memory", retryable=True)

    names = ("attempts", "retries", "failures")
    before = {n: _sample(f"esper_tezzeret_compile_{n}_total", pipeline="fast") for n in names}
    submit(hub, mlp_ir(), FAST)
    worker = _worker(hub, tmp_path, failing)
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    after = {n: _sample(f"esper_tezzeret_compile_{n}_total", pipeline="fast") for n in names}
    # Three attempts allowed: the second and third repeat the first.
    assert {n: after[n] - before[n] for n in names} == {"attempts": 3, "retries": 2, "failures": 3}


def test_urza_counts_downloads_and_shows_compile_jobs_by_state(hub: UrzaHub, tmp_path: Path) -> None:
    collector = CompileJobMetrics()
    registry = CollectorRegistry()
    registry.register(collector)
    collector.register(hub)
    submit(hub, mlp_ir(), FAST, kernel_pb2.COMPILATION_PIPELINE_STANDARD)
    assert registry.get_sample_value("esper_urza_compile_jobs", {"state": "QUEUED"}) == 2
    assert registry.get_sample_value("esper_urza_compile_jobs", {"state": "SUCCEEDED"}) == 0

    worker = _worker(hub, tmp_path, StubCompiler())
    try:
        assert worker.run_once()
    finally:
        worker.close()
    assert hub.compile_job_counts() == {"QUEUED": 1, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "SKIPPED": 0}
    assert registry.get_sample_value("esper_urza_compile_jobs", {"state": "SUCCEEDED"}) == 1

    (stored,) = hub.query_kernels(urza_pb2.QueryKernelsRequest()).result.kernels
    downloads = _sample("esper_urza_kernel_downloads_total")
    chunks = list(hub.download_kernel(urza_pb2.DownloadKernelRequest(kernel_id=stored.kernel_id)))
    assert chunks and _sample("esper_urza_kernel_downloads_total") == downloads + 1


def test_a_hub_registers_with_the_process_collector_until_closed(tmp_path: Path) -> None:
    queued = _sample("esper_urza_compile_jobs", state="QUEUED")
    hub = UrzaHub.open(UrzaConfig(data_dir=str(tmp_path / "urza")))
    submit(hub, mlp_ir(), FAST)
    assert _sample("esper_urza_compile_jobs", state="QUEUED") == queued + 1
    hub.close()
    assert _sample("esper_urza_compile_jobs", state="QUEUED") == queued
