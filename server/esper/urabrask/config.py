"""Configuration of Urabrask's validator and its tagging policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from esper import checks
from esper.leyline.v1 import kernel_pb2
from esper.tezzeret.config import DEVICE_KINDS, default_hardware_target


@dataclass(frozen=True)
class TaggingPolicy:
    """How tags are assigned (docs/assets.md, "Tags").

    With at least `min_population` validated peers on the same hardware target, a kernel
    is tagged by the percentile its metric falls at among them: latency at or below
    `fast_percentile` is high_speed, at or above `slow_percentile` low_speed, medium_speed
    in between; memory likewise low_memory / high_memory. Below that population the fixed
    thresholds apply (CPU figures for small seed blocks). `numerically_stable` is absolute
    in both regimes: drift from the eager build at most `stable_drift`.
    """

    min_population: int = 8
    fast_percentile: float = 100.0 / 3.0
    slow_percentile: float = 200.0 / 3.0
    low_memory_percentile: float = 100.0 / 3.0
    high_memory_percentile: float = 200.0 / 3.0
    high_speed_max_latency_ms: float = 0.1
    low_speed_min_latency_ms: float = 1.0
    low_memory_max_mb: float = 1.0
    high_memory_min_mb: float = 16.0
    low_power_max_watts: float = 50.0
    high_power_min_watts: float = 200.0
    stable_drift: float = 1e-6

    def __post_init__(self) -> None:
        checks.positive("min_population", self.min_population)
        for low, high, what in (
            (self.fast_percentile, self.slow_percentile, "speed percentiles"),
            (self.low_memory_percentile, self.high_memory_percentile, "memory percentiles"),
        ):
            if not 0.0 <= low < high <= 100.0:
                raise ValueError(f"{what} must satisfy 0 <= low < high <= 100, got {low}, {high}")
        if not 0.0 < self.high_speed_max_latency_ms < self.low_speed_min_latency_ms:
            raise ValueError("fixed latency thresholds must satisfy 0 < high_speed max < low_speed min")
        if not 0.0 < self.low_memory_max_mb < self.high_memory_min_mb:
            raise ValueError("fixed memory thresholds must satisfy 0 < low_memory max < high_memory min")
        checks.non_negative("stable_drift", self.stable_drift)


def _default_tolerances() -> dict[int, float]:
    return {
        kernel_pb2.COMPILATION_PIPELINE_FAST: 1e-4,
        kernel_pb2.COMPILATION_PIPELINE_STANDARD: 1e-4,
        # Inductor fuses and reorders reductions, so its results drift more.
        kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE: 1e-3,
    }


@dataclass(frozen=True)
class UrabraskConfig:
    """One validator worker.

    `check_batch_sizes` are the batch sizes the kernel is run at and compared with the
    eager build (include 1 and a larger one); `benchmark_batch_size` is where latency,
    throughput and memory are measured, over `iterations` calls after `warmup` calls.
    `hardware_target` is where this worker measures, named as Tezzeret names it (e.g.
    "cpu_x86_64"); kernels built for another target are rejected, not benchmarked.
    `drift_tolerance` is the largest absolute difference from the eager build a
    pipeline may show. The sandbox is killed after `sandbox_timeout_seconds`
    (start-up with the torch import included) and runs with `sandbox_threads` threads,
    an empty environment, its own temporary folder and the resource limits below
    (CPU seconds, largest file it may write, open files; no core dumps).
    `require_signature` rejects kernels without a signature by a trusted compile
    worker before they reach the sandbox; turning it off is for tests.
    `device` ("cpu", "cuda") is where kernels run and are measured; `hardware_target`
    must be its (esper.tezzeret.config.default_hardware_target(device)), and the
    validator only claims kernels built for it.
    """

    worker_id: str = "urabrask-0"
    hardware_target: str = field(default_factory=default_hardware_target)  # see default_hardware_target(device)
    check_batch_sizes: tuple[int, ...] = (1, 7, 32)
    benchmark_batch_size: int = 32
    warmup: int = 10
    iterations: int = 200
    drift_tolerance: dict[int, float] = field(default_factory=_default_tolerances)
    sandbox_timeout_seconds: float = 120.0
    sandbox_threads: int = 1
    lease_seconds: int = 300
    poll_interval_seconds: float = 1.0
    peer_window: int = 1000
    recent_reports: int = 100
    input_seed: int = 0
    tagging: TaggingPolicy = field(default_factory=TaggingPolicy)
    require_signature: bool = True
    sandbox_max_file_bytes: int = 512 * 1024 * 1024
    sandbox_max_open_files: int = 256
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.worker_id:
            raise ValueError("worker_id must be set")
        if self.device not in DEVICE_KINDS:
            raise ValueError(f"device must be one of {DEVICE_KINDS}, got {self.device!r}")
        if not self.check_batch_sizes or min(self.check_batch_sizes) < 1:
            raise ValueError(f"check_batch_sizes must be non-empty and >= 1, got {self.check_batch_sizes}")
        checks.positive("benchmark_batch_size", self.benchmark_batch_size)
        checks.non_negative("warmup", self.warmup)
        checks.positive("iterations", self.iterations)
        checks.positive("sandbox_timeout_seconds", self.sandbox_timeout_seconds)
        checks.positive("sandbox_threads", self.sandbox_threads)
        checks.in_range("lease_seconds", self.lease_seconds, 1, 3600)
        checks.positive("poll_interval_seconds", self.poll_interval_seconds)
        checks.positive("peer_window", self.peer_window)
        checks.positive("recent_reports", self.recent_reports)
        for pipeline, tolerance in self.drift_tolerance.items():
            checks.non_negative(f"drift_tolerance[{pipeline}]", tolerance)
        checks.positive("sandbox_max_file_bytes", self.sandbox_max_file_bytes)
        checks.at_least("sandbox_max_open_files", self.sandbox_max_open_files, 16)

    def tolerance_for(self, pipeline: int) -> float:
        """Largest drift allowed for `pipeline`; the tightest configured one if it is unknown."""
        if pipeline in self.drift_tolerance:
            return self.drift_tolerance[pipeline]
        return min(self.drift_tolerance.values(), default=0.0)
