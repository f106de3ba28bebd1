"""Run one kernel in a separate process and bring back its validation report.

The validator never loads a kernel it has not yet trusted into its own process: a
kernel that segfaults, hangs or exhausts memory must cost one sandbox, not the
worker. `run_sandbox` writes the request to a fresh temporary folder, starts
`python -m esper.urabrask.sandbox FOLDER` (a new interpreter, so torch state is
clean, as with multiprocessing's spawn), and reads back the report the child wrote.
A child that dies (non-zero exit without a report, a signal) or outlives the timeout
yields a failed report naming how it ended.

The child starts with an empty environment (only what it needs to find Python and
Esper, its thread count, and its own temporary and home folder inside the request
folder, which is also its working folder), and its first act, before torch is
imported or a byte of the kernel is read, is to lower its resource limits for good:
CPU seconds, the largest file it may write, open files, and no core dumps.

Request folder: `artifact.pt2`, `kernel.binpb` (KernelArtifact), `ir.binpb`
(BlueprintIR), `settings.json`. Answer: `report.binpb` (UrabraskValidationReport
without identity, tags or time, which the parent fills in).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import esper
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urabrask import validation_report as reports
from esper.urabrask.config import UrabraskConfig

logger = logging.getLogger(__name__)

ARTIFACT_FILE = "artifact.pt2"
KERNEL_FILE = "kernel.binpb"
IR_FILE = "ir.binpb"
SETTINGS_FILE = "settings.json"
REPORT_FILE = "report.binpb"
_STDERR_TAIL_CHARS = 600

Report = kernel_pb2.UrabraskValidationReport


def run_sandbox(
    artifact: bytes,
    kernel: kernel_pb2.KernelArtifact,
    ir: blueprint_pb2.BlueprintIR,
    config: UrabraskConfig,
) -> Report:
    """Check and benchmark `kernel` in a child process; the report's `passed` says if it may be used.

    The returned report carries the kernel id, benchmark batch size and the measured
    numbers; hardware target, tags and time are the caller's to set.
    """
    with tempfile.TemporaryDirectory(prefix="urabrask-sandbox-") as folder:
        request = Path(folder)
        (request / ARTIFACT_FILE).write_bytes(artifact)
        (request / KERNEL_FILE).write_bytes(kernel.SerializeToString())
        (request / IR_FILE).write_bytes(ir.SerializeToString())
        (request / SETTINGS_FILE).write_text(json.dumps(_settings(kernel, config)), encoding="utf-8")
        report = _spawn(request, config)
    report.kernel_id = kernel.kernel_id
    report.benchmark_batch_size = config.benchmark_batch_size
    return report


def _settings(kernel: kernel_pb2.KernelArtifact, config: UrabraskConfig) -> dict[str, object]:
    """The child's `ProbeSettings` fields, plus its thread count (the parent does not import torch)."""
    return {
        "check_batch_sizes": list(config.check_batch_sizes),
        "benchmark_batch_size": config.benchmark_batch_size,
        "warmup": config.warmup,
        "iterations": config.iterations,
        "drift_tolerance": config.tolerance_for(kernel.pipeline),
        "input_seed": config.input_seed,
        "threads": config.sandbox_threads,
        "limits": _limits(config),
    }


def _limits(config: UrabraskConfig) -> dict[str, int]:
    """The child's resource limits, soft and hard alike, so it cannot raise them again."""
    return {
        "RLIMIT_CPU": math.ceil(config.sandbox_timeout_seconds) + 5,
        "RLIMIT_FSIZE": config.sandbox_max_file_bytes,
        "RLIMIT_NOFILE": config.sandbox_max_open_files,
        "RLIMIT_CORE": 0,
    }


def _spawn(request: Path, config: UrabraskConfig) -> Report:
    command = [sys.executable, "-m", "esper.urabrask.sandbox", str(request)]
    (request / "tmp").mkdir()
    try:
        finished = subprocess.run(
            command,
            env=child_environment(request, config.sandbox_threads),
            cwd=request,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=config.sandbox_timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed the child.
        return _failed(f"sandbox timed out after {config.sandbox_timeout_seconds:g} s")
    stderr = finished.stderr.decode("utf-8", errors="replace")
    report_path = request / REPORT_FILE
    if report_path.exists():
        report = Report()
        report.ParseFromString(report_path.read_bytes())
        return report
    logger.warning("sandbox ended without a report (exit %d): %s", finished.returncode, stderr[-2000:])
    return _failed(f"{_describe_exit(finished.returncode)}{_tail(stderr)}")


def child_environment(request: Path, threads: int) -> dict[str, str]:
    """Everything the sandbox's environment holds: nothing of the validator's own (no credentials,
    no proxies, no OTEL endpoint), only where Python finds Esper and where to write."""
    roots = [str(Path(path).parent) for path in esper.__path__]
    scratch = str(request / "tmp")
    return {
        "PATH": os.defpath,
        "PYTHONPATH": os.pathsep.join(roots),
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
        "HOME": str(request),
        "TMPDIR": scratch,
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(scratch, "inductor"),
    }


def apply_limits(limits: dict[str, int]) -> None:
    """Lower this process's resource limits, soft and hard, for good."""
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"sandbox killed by {name}"
    return f"sandbox exited with code {returncode}"


def _tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f": {lines[-1][-_STDERR_TAIL_CHARS:]}" if lines else ""


def _failed(detail: str) -> Report:
    return Report(passed=False, failure_reason=reports.failure_reason(reports.CRASH, detail))


def main(argv: list[str] | None = None) -> int:
    """Child side: read the request folder, probe the kernel, write the report."""
    from esper.urabrask.probe import probe_request

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m esper.urabrask.sandbox REQUEST_FOLDER", file=sys.stderr)
        return 2
    return probe_request(Path(args[0]))


def _enter_sandbox(argv: list[str]) -> None:
    """Limits first: before torch is imported, before the kernel's bytes are read."""
    if len(argv) == 1:
        settings = json.loads((Path(argv[0]) / SETTINGS_FILE).read_text(encoding="utf-8"))
        apply_limits(settings.pop("limits", {}))


if __name__ == "__main__":
    _enter_sandbox(sys.argv[1:])
    sys.exit(main())
