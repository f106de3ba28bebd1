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

`ForkedSandbox` gives every kernel the same fresh process of its own without paying
for a new interpreter and the torch import each time (seconds, far more on a loaded
machine): its children fork from a warm fork server (esper.forkserver) that runs in
the sandbox's empty environment, lowered the file, open-file and core-dump limits
before it imported anything (its children inherit them), and imported torch and the
probe but never touched a kernel. Each child then lowers its CPU seconds (counted
from its fork), takes the request folder as home, temporary and working folder, and
runs `probe_request` exactly as the command-line child does.

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
from collections.abc import Callable
from pathlib import Path

import esper
from esper import forkserver
from esper.forkserver import ForkServer
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.urabrask import validation_report as reports
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
    """`run_sandbox` with every child forked from a warm fork server; `close()` kills what still runs.

    `config` gives the limits the fork server lowers for itself and every child (file
    size, open files, core dumps) and the children's thread count; each call's config
    gives that child's CPU seconds and timeout.
    """

    def __init__(self, config: UrabraskConfig | None = None, *, name: str = "urabrask-forks") -> None:
        settings = config if config is not None else UrabraskConfig()
        inherited = {key: value for key, value in _limits(settings).items() if key != "RLIMIT_CPU"}
        self._server = ForkServer(
            PRELOAD,
            env=base_environment(settings.sandbox_threads),
            cwd=Path(tempfile.gettempdir()),
            limits=inherited,
            name=name,
        )
        self._threads = settings.sandbox_threads

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
        (request / "tmp").mkdir()
        ended = self._server.run(
            f"{__name__}:probe_in_child",
            [str(request)],
            cwd=request,
            env=child_environment(request, self._threads),
            limits={"RLIMIT_CPU": _limits(config)["RLIMIT_CPU"]},
            stdout=request / STDOUT_FILE,
            stderr=request / STDERR_FILE,
            timeout=config.sandbox_timeout_seconds,
        )
        if ended.timed_out:
            return _failed(f"sandbox timed out after {config.sandbox_timeout_seconds:g} s")
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
    report = _read_report(request)
    if report is not None:
        return report
    logger.warning("sandbox ended without a report (exit %d): %s", finished.returncode, stderr[-2000:])
    return _failed(f"{_describe_exit(finished.returncode)}{_tail(stderr)}")


def child_environment(request: Path, threads: int) -> dict[str, str]:
    """Everything the sandbox's environment holds: nothing of the validator's own (no credentials,
    no proxies, no OTEL endpoint), only where Python finds Esper and where to write."""
    scratch = str(request / "tmp")
    return {
        **base_environment(threads),
        "HOME": str(request),
        "TMPDIR": scratch,
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(scratch, "inductor"),
    }


def base_environment(threads: int) -> dict[str, str]:
    """The sandbox's environment before a request gives it a folder: where Python finds Esper, its threads."""
    roots = [str(Path(path).parent) for path in esper.__path__]
    return {
        "PATH": os.defpath,
        "PYTHONPATH": os.pathsep.join(roots),
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
    }


def apply_limits(limits: dict[str, int]) -> None:
    """Lower this process's resource limits, soft and hard, for good."""
    forkserver.apply_limits(limits)


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
