"""Configuration of one Tezzeret compile worker."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

from esper import checks
from esper.errors import InvalidArgument
from esper.leyline.v1 import kernel_pb2

FAST = kernel_pb2.COMPILATION_PIPELINE_FAST
STANDARD = kernel_pb2.COMPILATION_PIPELINE_STANDARD
AGGRESSIVE = kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE
ALL_PIPELINES: tuple[kernel_pb2.CompilationPipeline, ...] = (FAST, STANDARD, AGGRESSIVE)

# WAL stages at which `fault_exit_after` may end the process (see TezzeretConfig).
FAULT_STAGES = ("claimed", "tmp_written", "compiled", "completed")

_HARDWARE_TARGET = re.compile(r"[a-z0-9_]{1,32}")
_WORKER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


DEVICE_KINDS = ("cpu", "cuda")


def default_hardware_target(device: str = "cpu") -> str:
    """This machine's target for `device`: `cpu_<machine>` ("cpu_x86_64"), or `cuda_sm<major><minor>`
    of the first CUDA device ("cuda_sm80"; "cuda_unknown" without one). '-' separates kernel-id
    parts, so '_' here; the part before the first '_' is the device kind."""
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return f"cuda_sm{major}{minor}"
        return "cuda_unknown"
    machine = re.sub(r"[^a-z0-9_]", "_", platform.machine().lower()) or "unknown"
    return f"cpu_{machine}"


@dataclass(frozen=True)
class TezzeretConfig:
    """A compile worker's settings, validated at construction.

    `wal_dir` holds the write-ahead log, `work_dir` the compiled artifacts waiting
    to be uploaded (and nothing else: stray files there are removed at start).
    `pipelines` are the ones this worker will take. While Urza's queue is longer
    than `conservative_queue_threshold` jobs, the worker claims FAST jobs only.
    `max_batch` bounds the dynamic batch dimension every kernel is exported with.
    `device` ("cpu", "cuda") is the kind of device kernels are built for: the module and
    its example go there before export, and `hardware_target` (default: this machine's
    for `device`) names it in every kernel id.

    The numerics check compares a compiled kernel with the eager module on inputs
    of each of `numerics_batch_sizes`; a max absolute difference above
    `numerics_tolerance` fails the compile. A negative tolerance fails every check:
    that is a drill facility for the failure path, not a setting for production.

    `fault_exit_after` is a test and drill facility: naming a stage of
    FAULT_STAGES makes the process exit with status 3 right after that stage of its
    first job (os._exit, so nothing is flushed or cleaned up: a simulated crash).
    Leave it None in production.
    """

    worker_id: str
    wal_dir: Path
    work_dir: Path
    hardware_target: str = ""
    pipelines: tuple[kernel_pb2.CompilationPipeline, ...] = ALL_PIPELINES
    conservative_queue_threshold: int = 8
    lease_seconds: int = 300
    poll_interval_seconds: float = 1.0
    numerics_tolerance: float = 1e-4
    numerics_batch_sizes: tuple[int, ...] = (1, 37)
    numerics_seed: int = 0
    example_batch_size: int = 8
    max_batch: int = 4096
    inductor_compile_threads: int = 1
    recent_jobs_limit: int = 1000
    fault_exit_after: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.device not in DEVICE_KINDS:
            raise ValueError(f"device must be one of {DEVICE_KINDS}, got {self.device!r}")
        if not self.hardware_target:
            object.__setattr__(self, "hardware_target", default_hardware_target(self.device))
        if not self.hardware_target.startswith(f"{self.device}_"):
            raise ValueError(f"hardware_target {self.hardware_target!r} is not a {self.device} target")
        object.__setattr__(self, "wal_dir", Path(self.wal_dir))
        object.__setattr__(self, "work_dir", Path(self.work_dir))
        object.__setattr__(self, "pipelines", tuple(self.pipelines))
        object.__setattr__(self, "numerics_batch_sizes", tuple(self.numerics_batch_sizes))
        if not _WORKER_ID.fullmatch(self.worker_id):
            raise ValueError(f"worker_id must match {_WORKER_ID.pattern}, got {self.worker_id!r}")
        if not _HARDWARE_TARGET.fullmatch(self.hardware_target):
            raise ValueError(f"hardware_target must match {_HARDWARE_TARGET.pattern}, got {self.hardware_target!r}")
        if not self.pipelines or any(p not in ALL_PIPELINES for p in self.pipelines):
            raise ValueError(
                f"pipelines must be a non-empty subset of FAST, STANDARD, AGGRESSIVE, got {self.pipelines}"
            )
        if len(set(self.pipelines)) != len(self.pipelines):
            raise ValueError(f"pipelines must not repeat: {self.pipelines}")
        checks.non_negative("conservative_queue_threshold", self.conservative_queue_threshold)
        checks.in_range("lease_seconds", self.lease_seconds, 1, 3600)
        checks.positive("poll_interval_seconds", self.poll_interval_seconds)
        self._check_batches()
        checks.positive("inductor_compile_threads", self.inductor_compile_threads)
        checks.positive("recent_jobs_limit", self.recent_jobs_limit)
        if self.fault_exit_after is not None and self.fault_exit_after not in FAULT_STAGES:
            raise ValueError(f"fault_exit_after must be one of {FAULT_STAGES}, got {self.fault_exit_after!r}")

    def _check_batches(self) -> None:
        # Export specializes a dimension whose example size is 0 or 1, so the example needs >= 2.
        checks.in_range("tezzeret.example_batch_size", self.example_batch_size, 2, self.max_batch)
        if not self.numerics_batch_sizes:
            raise InvalidArgument.for_field("tezzeret.numerics_batch_sizes", "must name at least one batch size")
        for size in self.numerics_batch_sizes:
            checks.in_range("tezzeret.numerics_batch_sizes", size, 1, self.max_batch)

    @property
    def artifacts_dir(self) -> Path:
        return self.work_dir / "artifacts"

    @property
    def wal_path(self) -> Path:
        return self.wal_dir / "tezzeret.wal"
