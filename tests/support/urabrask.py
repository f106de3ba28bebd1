"""An UrzaHub with compiled kernels waiting for validation, and a stand-in for the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urabrask.config import UrabraskConfig
from esper.urza.hub import UrzaHub
from tests.support.urza import TARGET, claim, complete, make_hub, sample_ir, submit

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST


@contextmanager
def hub_at(tmp_path: Path) -> Iterator[UrzaHub]:
    hub = make_hub(f"sqlite:///{tmp_path / 'urza.db'}", tmp_path / "artifacts")
    try:
        yield hub
    finally:
        hub.close()


def add_compiled_kernels(hub: UrzaHub, count: int, *, target: str = TARGET) -> list[kernel_pb2.KernelArtifact]:
    """`count` COMPILED kernels of distinct blueprints, oldest first."""
    kernels = []
    for index in range(count):
        submit(hub, sample_ir(seed=1000 + index), pipelines=[FAST])
        job = claim(hub)
        assert job is not None
        kernels.append(complete(hub, job, f"artifact-{index}".encode(), hardware_target=target))
    return kernels


@dataclass
class FakeSandbox:
    """Returns queued measurements instead of running kernels; records what it was given."""

    latencies: list[float] = field(default_factory=list)
    failure: str = ""
    seen: list[tuple[bytes, str]] = field(default_factory=list)

    def __call__(
        self,
        artifact: bytes,
        kernel: kernel_pb2.KernelArtifact,
        ir: blueprint_pb2.BlueprintIR,
        config: UrabraskConfig,
    ) -> kernel_pb2.UrabraskValidationReport:
        assert ir.nodes, "the claim must carry the kernel's IR"
        self.seen.append((artifact, kernel.kernel_id))
        if self.failure:
            return kernel_pb2.UrabraskValidationReport(
                kernel_id=kernel.kernel_id, passed=False, failure_reason=self.failure
            )
        latency = self.latencies.pop(0) if self.latencies else 0.5
        return kernel_pb2.UrabraskValidationReport(
            kernel_id=kernel.kernel_id,
            passed=True,
            latency_ms_mean=latency,
            latency_ms_p99=latency * 2,
            throughput_ops_per_sec=1000.0 / latency,
            memory_mb_peak=4.0,
            precision_drift_vs_fp32=0.0,
            benchmark_batch_size=config.benchmark_batch_size,
        )


class StepClock:
    """Datetimes one second apart, so reports have a known order."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
