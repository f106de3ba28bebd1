"""alert_task: cycles while the server runs, survives a failing cycle, and returns once asked to stop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import CollectorRegistry

from esper.nissa.alerts import AlertEngine, NissaAlertsConfig, alert_task, parse_target
from tests.support.alert_targets import FakeTargets

URL = "http://127.0.0.1:9455/metrics"


class CountingEngine(AlertEngine):
    """Counts cycles and the threads they ran on; the second cycle fails."""

    def __init__(self, config: NissaAlertsConfig, targets: FakeTargets) -> None:
        super().__init__(config, fetch=targets.fetch)
        self.cycles = 0
        self.threads: set[int] = set()

    def scrape_and_evaluate(self) -> None:
        self.cycles += 1
        self.threads.add(threading.get_ident())
        if self.cycles == 2:
            raise RuntimeError("one bad cycle")
        super().scrape_and_evaluate()


def test_the_task_cycles_off_the_event_loop_until_stopped() -> None:
    targets = FakeTargets({URL: CollectorRegistry()})
    engine = CountingEngine(NissaAlertsConfig(static_targets=[parse_target(f"tamiyo={URL}")]), targets)

    async def main() -> int:
        stopping = asyncio.Event()
        task = asyncio.create_task(alert_task(engine, 0.01)(stopping))
        while engine.cycles < 4:
            await asyncio.sleep(0.01)
        stopping.set()
        await asyncio.wait_for(task, timeout=5)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert engine.cycles >= 4 and len(targets.fetched) >= 3
    assert loop_thread not in engine.threads


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        alert_task(AlertEngine(NissaAlertsConfig()), 0)
