"""What the sandbox measures: the gates a kernel must pass and the numbers of its report.

Runs inside the sandbox process only (see `esper.urabrask.sandbox`): a kernel that
crashes here takes the sandbox down, not the validator.

Gates, in order: the artifact loads; it runs at every check batch size and returns
the declared shape; outputs (and parameter gradients, when it has parameters) are
finite; outputs match the eager build of the same IR within the pipeline's
tolerance. Only a kernel that passes every gate is benchmarked.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from esper.fsutil import atomic_write
from esper.ir import build_module, example_input, ir_input_shape
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.tezzeret.artifacts import load_kernel_module
from esper.urabrask import sandbox
from esper.urabrask import validation_report as reports

MB = float(2**20)


class GateFailure(Exception):
    """The kernel failed a gate: a failure category (esper.urabrask.validation_report) and what happened."""

    def __init__(self, category: str, detail: str, *, drift: float = 0.0) -> None:
        super().__init__(reports.failure_reason(category, detail))
        self.drift = drift


@dataclass(frozen=True)
class ProbeSettings:
    """What to run: batch sizes to check, where and how long to benchmark, the drift allowed."""

    check_batch_sizes: tuple[int, ...]
    benchmark_batch_size: int
    warmup: int
    iterations: int
    drift_tolerance: float
    input_seed: int
    device: str = "cpu"


@dataclass(frozen=True)
class Benchmark:
    """Forward-call timings at one batch size, and the peak memory of one call."""

    latency_ms_mean: float
    latency_ms_p99: float
    throughput_ops_per_sec: float
    memory_mb_peak: float


def probe_request(folder: Path) -> int:
    """Probe the kernel described in `folder` and write its report there; the sandbox's exit code.

    Gate failures, and exceptions the kernel raises, are reported (exit 0); anything
    else that goes wrong is left to end the process without a report.
    """
    settings_json = json.loads((folder / sandbox.SETTINGS_FILE).read_text(encoding="utf-8"))
    torch.set_num_threads(int(settings_json.pop("threads")))
    settings_json.pop("limits", None)
    settings_json["check_batch_sizes"] = tuple(settings_json["check_batch_sizes"])
    settings = ProbeSettings(**settings_json)
    kernel = kernel_pb2.KernelArtifact.FromString((folder / sandbox.KERNEL_FILE).read_bytes())
    ir = blueprint_pb2.BlueprintIR.FromString((folder / sandbox.IR_FILE).read_bytes())
    report = probe(kernel, (folder / sandbox.ARTIFACT_FILE).read_bytes(), ir, settings)
    atomic_write(folder / sandbox.REPORT_FILE, report.SerializeToString())
    return 0


def probe(
    kernel: kernel_pb2.KernelArtifact, artifact: bytes, ir: blueprint_pb2.BlueprintIR, settings: ProbeSettings
) -> kernel_pb2.UrabraskValidationReport:
    """Load, gate and benchmark one kernel in this process."""
    report = kernel_pb2.UrabraskValidationReport(kernel_id=kernel.kernel_id)
    try:
        module = load_kernel_module(artifact, kernel.pipeline)
    except Exception as exc:
        traceback.print_exc()
        report.failure_reason = reports.failure_reason(
            reports.CRASH, f"artifact does not load: {type(exc).__name__}: {exc}"
        )
        return report
    try:
        report.precision_drift_vs_fp32 = check_kernel(module, kernel, ir, settings)
    except GateFailure as exc:
        report.failure_reason = str(exc)
        report.precision_drift_vs_fp32 = exc.drift
        return report
    module = module.to(settings.device)
    x = example_input(ir, settings.benchmark_batch_size, seed=settings.input_seed).to(settings.device)
    measured = benchmark_kernel(module, x, settings.warmup, settings.iterations)
    report.latency_ms_mean = measured.latency_ms_mean
    report.latency_ms_p99 = measured.latency_ms_p99
    report.throughput_ops_per_sec = measured.throughput_ops_per_sec
    report.memory_mb_peak = measured.memory_mb_peak
    report.power_watts_avg = 0.0  # CPUs here expose no power counter
    report.passed = True
    return report


def check_kernel(
    module: nn.Module,
    kernel: kernel_pb2.KernelArtifact,
    ir: blueprint_pb2.BlueprintIR,
    settings: ProbeSettings,
) -> float:
    """Run every gate; return the largest absolute drift from the eager build. Raises GateFailure."""
    declared = tuple(kernel.input_shape.dims)
    expected_in = ir_input_shape(ir)
    if declared != expected_in:
        raise GateFailure(
            reports.SHAPE_MISMATCH,
            f"kernel declares input {list(declared)} but its IR takes {list(expected_in)}",
        )
    declared_out = tuple(kernel.output_shape.dims)
    output_shape = tuple(ir.output_shape.dims)
    if declared_out and declared_out != output_shape:
        raise GateFailure(
            reports.SHAPE_MISMATCH,
            f"kernel declares output {list(declared_out)} but its IR gives {list(output_shape)}",
        )
    device = torch.device(settings.device)
    eager = build_module(ir).to(device)
    module = module.to(device)
    drift = 0.0
    for batch_size in settings.check_batch_sizes:
        x = example_input(ir, batch_size, seed=settings.input_seed + batch_size).to(device)
        with torch.no_grad():
            actual = _run(module, x, batch_size)
            reference = eager(x)
        if tuple(actual.shape) != (batch_size, *output_shape):
            raise GateFailure(
                reports.SHAPE_MISMATCH,
                f"output shape {list(actual.shape)} at batch {batch_size}, expected {[batch_size, *output_shape]}",
            )
        if not bool(torch.isfinite(actual).all()):
            raise GateFailure(reports.NON_FINITE, f"output holds NaN/Inf at batch {batch_size}")
        drift = max(drift, float((actual.double() - reference.double()).abs().max()))
    _check_gradients(module, example_input(ir, settings.benchmark_batch_size, seed=settings.input_seed).to(device))
    if drift > settings.drift_tolerance:
        raise GateFailure(
            reports.PRECISION_DRIFT,
            f"max abs difference {drift:.3e} vs the eager fp32 build exceeds the tolerance "
            f"{settings.drift_tolerance:.1e}",
            drift=drift,
        )
    return drift


def benchmark_kernel(module: nn.Module, x: Tensor, warmup: int, iterations: int) -> Benchmark:
    """Time `iterations` forward calls (autograd recording, as in training) after `warmup` calls."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(warmup):
        module(x)
    sync()
    timings_ns = []
    started = time.perf_counter_ns()
    for _ in range(iterations):
        call_started = time.perf_counter_ns()
        module(x)
        sync()  # a CUDA call returns before the kernel ran
        timings_ns.append(time.perf_counter_ns() - call_started)
    total_seconds = (time.perf_counter_ns() - started) / 1e9
    timings_ms = sorted(ns / 1e6 for ns in timings_ns)
    return Benchmark(
        latency_ms_mean=sum(timings_ms) / len(timings_ms),
        latency_ms_p99=_percentile(timings_ms, 99.0),
        throughput_ops_per_sec=iterations / total_seconds if total_seconds > 0 else 0.0,
        memory_mb_peak=peak_memory_mb(module, x),
    )


def peak_memory_mb(module: nn.Module, x: Tensor) -> float:
    """Peak of the bytes allocated and not yet freed during one forward call, in MiB.

    Traced from the CPU allocator's events (Kineto with profile_memory), so it
    counts every allocation of the call, compiled kernels' included, and nothing
    the process held before; tensors the autograd graph keeps count until the end.
    On CUDA, the device allocator's own peak over the call.
    """
    if x.is_cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        output = module(x)
        torch.cuda.synchronize()
        del output
        return (torch.cuda.max_memory_allocated(x.device) - before) / MB
    # The autograd profiler is the same Kineto tracer as torch.profiler without the latter's
    # start-up import of torch._dynamo (about a second per sandbox).
    with torch.autograd.profiler.profile(use_kineto=True, profile_memory=True) as prof:
        output = module(x)
    del output
    events = [event for event in prof.kineto_results.events() if event.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda event: event.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak / MB


def _run(module: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    try:
        output = module(x)
    except Exception as exc:
        raise GateFailure(reports.CRASH, f"kernel raised at batch {batch_size}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(output, Tensor):
        raise GateFailure(reports.SHAPE_MISMATCH, f"kernel returned {type(output).__name__}, not a tensor")
    return output


def _check_gradients(module: nn.Module, x: Tensor) -> None:
    """A seed trains its kernel: its parameters' gradients must exist and be finite."""
    parameters = [param for param in module.parameters() if param.requires_grad]
    if not parameters:
        return  # a frozen kernel (AGGRESSIVE) has nothing to train
    try:
        module(x).sum().backward()
    except Exception as exc:
        raise GateFailure(reports.CRASH, f"backward raised: {type(exc).__name__}: {exc}") from exc
    for param in parameters:
        if param.grad is not None and not bool(torch.isfinite(param.grad).all()):
            raise GateFailure(reports.NON_FINITE, "a parameter gradient holds NaN/Inf")
    module.zero_grad(set_to_none=True)


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]
