"""Run one kernel in a separate process and bring back its validation report.

The validator never loads a kernel it has not yet trusted into its own process: a
kernel that segfaults, hangs or exhausts memory must cost one sandbox, not the
worker. `run_sandbox` writes the request to a fresh temporary folder, starts
`python -m esper.urabrask.sandbox FOLDER` (a new interpreter, so torch state is
clean, as with multiprocessing's spawn), and reads back the report the child wrote.
A child that dies (non-zero exit without a report, a signal) or outlives the timeout
yields a failed report naming how it ended.

`ForkedSandbox` gives every kernel the same fresh process of its own without paying
for a new interpreter and the torch import each time (seconds, far more on a loaded
machine): its children fork from a warm fork server (esper.forkserver) that has
imported the probe and nothing else, and run `probe_request` exactly as the
command-line child does.

Request folder: `artifact.pt2`, `kernel.binpb` (KernelArtifact), `ir.binpb`
(BlueprintIR), `settings.json`. Answer: `report.binpb` (UrabraskValidationReport
without identity, tags or time, which the parent fills in).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import esper
from esper.forkserver import ForkServer
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urabrask import report as reports
from esper.urabrask.config import UrabraskConfig

logger = logging.getLogger(__name__)

ARTIFACT_FILE = "artifact.pt2"
KERNEL_FILE = "kernel.binpb"
IR_FILE = "ir.binpb"
SETTINGS_FILE = "settings.json"
REPORT_FILE = "report.binpb"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
# What the fork server imports once: torch and the probe, nothing a kernel could have touched.
PRELOAD = (
    "esper.urabrask.probe",
    # What loading and running an exported program imports on first use (seconds, paid once here).
    "torch._dynamo",
    "torch._inductor",
    "torch._inductor.codecache",
    "torch._inductor.sizevars",
    "torch.export._trace",
    "torch.export._unlift",
    "torch.export.pt2_archive",
    "torch._export.serde.serialize",
    "torch._export.passes",
    "torch._functorch.aot_autograd",
    "torch.fx.experimental.symbolic_shapes",
    "torch.fx.experimental.proxy_tensor",
)
_STDERR_TAIL_CHARS = 600

Report = kernel_pb2.UrabraskValidationReport


def run_sandbox(
    artifact: bytes,
    kernel: kernel_pb2.KernelArtifact,
    ir: blueprint_pb2.BlueprintIR,
    config: UrabraskConfig,
) -> Report:
    """Check and benchmark `kernel` in a new interpreter; the report's `passed` says if it may be used.

    The returned report carries the kernel id, benchmark batch size and the measured
    numbers; hardware target, tags and time are the caller's to set.
    """
    return _in_request_folder(artifact, kernel, ir, config, _spawn)


class SandboxStopped(Exception):
    """The sandbox's fork server was closed before the kernel's report was written."""


class ForkedSandbox:
    """`run_sandbox` with every child forked from a warm fork server; `close()` kills what still runs."""

    def __init__(self, name: str = "urabrask-forks") -> None:
        self._server = ForkServer(PRELOAD, name=name)

    def start(self) -> None:
        """Start the fork server now (it imports torch and the probe in the background)."""
        self._server.start()

    def __call__(
        self,
        artifact: bytes,
        kernel: kernel_pb2.KernelArtifact,
        ir: blueprint_pb2.BlueprintIR,
        config: UrabraskConfig,
    ) -> Report:
        return _in_request_folder(artifact, kernel, ir, config, self._fork)

    def close(self) -> None:
        self._server.close()

    def _fork(self, request: Path, config: UrabraskConfig) -> Report:
        ended = self._server.run(
            f"{__name__}:probe_in_child",
            [str(request)],
            cwd=request,
            stdout=request / STDOUT_FILE,
            stderr=request / STDERR_FILE,
            timeout=config.sandbox_timeout_seconds,
        )
        report = _read_report(request)
        if report is not None:
            return report
        if ended.stopped:
            # Cut short by our own shutdown: nothing is known about the kernel, so no verdict.
            raise SandboxStopped(f"sandbox {ended.describe()}")
        stderr = (
            (request / STDERR_FILE).read_text(encoding="utf-8", errors="replace")
            if (request / STDERR_FILE).exists()
            else ""
        )
        if ended.timed_out:
            return _failed(f"sandbox timed out after {config.sandbox_timeout_seconds:g} s")
        logger.warning("sandbox ended without a report (%s): %s", ended.describe(), stderr[-2000:])
        return _failed(f"sandbox {ended.describe()}{_tail(stderr)}")


def probe_in_child(request: str) -> int:
    """Fork server side: the command-line child's work, in a child forked from the warm server."""
    return main([request])


def _in_request_folder(
    artifact: bytes,
    kernel: kernel_pb2.KernelArtifact,
    ir: blueprint_pb2.BlueprintIR,
    config: UrabraskConfig,
    spawn: Callable[[Path, UrabraskConfig], Report],
) -> Report:
    with tempfile.TemporaryDirectory(prefix="urabrask-sandbox-") as folder:
        request = Path(folder)
        (request / ARTIFACT_FILE).write_bytes(artifact)
        (request / KERNEL_FILE).write_bytes(kernel.SerializeToString())
        (request / IR_FILE).write_bytes(ir.SerializeToString())
        (request / SETTINGS_FILE).write_text(json.dumps(_settings(kernel, config)), encoding="utf-8")
        report = spawn(request, config)
    report.kernel_id = kernel.kernel_id
    report.benchmark_batch_size = config.benchmark_batch_size
    return report


def _read_report(request: Path) -> Report | None:
    path = request / REPORT_FILE
    if not path.exists():
        return None
    report = Report()
    report.ParseFromString(path.read_bytes())
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
        "device": config.device,
        "threads": config.sandbox_threads,
    }


def _spawn(request: Path, config: UrabraskConfig) -> Report:
    command = [sys.executable, "-m", "esper.urabrask.sandbox", str(request)]
    try:
        finished = subprocess.run(
            command,
            env=_child_env(config.sandbox_threads),
            capture_output=True,
            timeout=config.sandbox_timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed the child.
        return _failed(f"sandbox timed out after {config.sandbox_timeout_seconds:g} s")
    stderr = finished.stderr.decode("utf-8", errors="replace")
    report = _read_report(request)
    if report is not None:
        return report
    logger.warning("sandbox ended without a report (exit %d): %s", finished.returncode, stderr[-2000:])
    return _failed(f"{_describe_exit(finished.returncode)}{_tail(stderr)}")


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    roots = [str(Path(path).parent) for path in esper.__path__]
    env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


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


if __name__ == "__main__":
    sys.exit(main())
