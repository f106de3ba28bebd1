"""Compiling in a child process: a Compiler for TezzeretWorker that never compiles in the caller.

torch.export keeps its tracer in process-wide state (esper.tezzeret.export_lock), so
a compile in the training process makes every kernel load there wait for the pass in
progress. `ForkedCompiler` hands each job to a fresh child of a warm fork server
(esper.forkserver) instead: the request folder holds the IR and the settings, the
child writes back the artifact and its metadata, or the compile error. The worker
keeps everything else (claims, write-ahead log, signing, upload) in its own thread.

Request folder: `ir.binpb`, `request.json` (pipeline, ids, worker settings). Answer:
`artifact.pt2` + `kernel.binpb` + `result.json` (seconds, notes), or `error.json`
(message, retryable).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from esper.forkserver import ForkServer
from esper.leyline.v1 import blueprint_pb2, kernel_pb2
from esper.tezzeret.config import TezzeretConfig
from esper.tezzeret.pipelines import CompiledKernel, CompileError, CompileInterrupted

logger = logging.getLogger(__name__)

# What the zygote imports once so a child starts compiling at once.
PRELOAD = (
    "esper.tezzeret.forked",
    "esper.tezzeret.pipelines",
    "esper.tezzeret.toolchain",
    "torch._dynamo",
    "torch._inductor",
    "torch._inductor.codecache",
    "torch._inductor.constant_folding",
    "torch._inductor.cpp_builder",
    "torch.export",
    "torch.export._trace",
    "torch.export._unlift",
    "torch.export.pt2_archive",
    "torch._export.serde.serialize",
    "torch._functorch.aot_autograd",
    "torch.fx.experimental.symbolic_shapes",
)
IR_FILE = "ir.binpb"
REQUEST_FILE = "request.json"
ARTIFACT_FILE = "artifact.pt2"
KERNEL_FILE = "kernel.binpb"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
TOOLCHAIN_FILE = "toolchain.txt"
STDERR_FILE = "stderr.txt"
_STDERR_TAIL_CHARS = 600


def compile_server(name: str = "tezzeret-forks") -> ForkServer:
    """A fork server whose children compile (torch and the pipelines already imported)."""
    return ForkServer(PRELOAD, name=name)


class ForkedCompiler:
    """`compile_blueprint`'s signature, run in a child of `server`; request folders go under `scratch`.

    A child gets `timeout_seconds` (default: the worker's lease, past which the job is
    lost anyway); one that dies or outlives it is a retryable CompileError.
    """

    def __init__(self, server: ForkServer, scratch: Path, *, timeout_seconds: float | None = None) -> None:
        self.server = server
        self.scratch = Path(scratch)
        self.timeout_seconds = timeout_seconds

    def __call__(
        self,
        ir: blueprint_pb2.BlueprintIR,
        pipeline: int,
        config: TezzeretConfig,
        *,
        blueprint_id: str = "",
        template_id: str = "",
        toolchain: str | None = None,
    ) -> CompiledKernel:
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="compile-", dir=self.scratch) as name:
            folder = Path(name)
            (folder / IR_FILE).write_bytes(ir.SerializeToString())
            request = {
                "pipeline": int(pipeline),
                "blueprint_id": blueprint_id,
                "template_id": template_id,
                "toolchain": toolchain,
                "config": config_to_json(config),
            }
            (folder / REQUEST_FILE).write_text(json.dumps(request), encoding="utf-8")
            timeout = self.timeout_seconds if self.timeout_seconds is not None else float(config.lease_seconds)
            ended = self.server.run(
                f"{__name__}:compile_request", [str(folder)], stderr=folder / STDERR_FILE, timeout=timeout
            )
            return _answer(folder, ended.describe(), interrupted=ended.stopped)

    def toolchain_hash(self, config: TezzeretConfig) -> str:
        """The worker's toolchain hash, computed in a child (it imports Inductor to find the C++ compiler).

        Raises CompileInterrupted if the fork server is closed meanwhile, CompileError if the child fails.
        """
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="toolchain-", dir=self.scratch) as name:
            folder = Path(name)
            (folder / REQUEST_FILE).write_text(json.dumps({"config": config_to_json(config)}), encoding="utf-8")
            ended = self.server.run(
                f"{__name__}:toolchain_request", [str(folder)], stderr=folder / STDERR_FILE, timeout=600.0
            )
            if (folder / TOOLCHAIN_FILE).exists():
                return (folder / TOOLCHAIN_FILE).read_text(encoding="utf-8").strip()
            if ended.stopped:
                raise CompileInterrupted(f"toolchain child stopped: {ended.describe()}")
            raise CompileError(f"toolchain child {ended.describe()} without a hash")


def _answer(folder: Path, how_it_ended: str, *, interrupted: bool) -> CompiledKernel:
    if (folder / RESULT_FILE).exists():
        result = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        kernel = kernel_pb2.KernelArtifact.FromString((folder / KERNEL_FILE).read_bytes())
        notes = (*result["notes"], f"compiled in child process {result['pid']}")
        return CompiledKernel((folder / ARTIFACT_FILE).read_bytes(), kernel, float(result["seconds"]), notes)
    if (folder / ERROR_FILE).exists():
        error = json.loads((folder / ERROR_FILE).read_text(encoding="utf-8"))
        raise CompileError(error["message"], retryable=bool(error["retryable"]))
    stderr = (
        (folder / STDERR_FILE).read_text(encoding="utf-8", errors="replace") if (folder / STDERR_FILE).exists() else ""
    )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    tail = f": {lines[-1][-_STDERR_TAIL_CHARS:]}" if lines else ""
    if interrupted:
        raise CompileInterrupted(f"compile child stopped: {how_it_ended}")
    raise CompileError(f"compile child {how_it_ended} without a result{tail}")


def config_to_json(config: TezzeretConfig) -> dict[str, Any]:
    """The worker's settings as JSON values (paths as strings, tuples as lists)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        values[item.name] = (
            str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        )
    return values


def compile_request(folder_name: str) -> int:
    """Child side: compile the request in `folder_name` and write the answer there; the exit code."""
    import torch

    from esper.tezzeret.pipelines import compile_blueprint

    folder = Path(folder_name)
    request = json.loads((folder / REQUEST_FILE).read_text(encoding="utf-8"))
    config = TezzeretConfig(**request["config"])
    # A compile is mostly Python; more threads would only take cores from training.
    torch.set_num_threads(config.inductor_compile_threads)
    ir = blueprint_pb2.BlueprintIR.FromString((folder / IR_FILE).read_bytes())
    try:
        compiled = compile_blueprint(
            ir,
            request["pipeline"],
            config,
            blueprint_id=request["blueprint_id"],
            template_id=request["template_id"],
            toolchain=request["toolchain"],
        )
    except CompileError as exc:
        _write(folder / ERROR_FILE, json.dumps({"message": str(exc), "retryable": exc.retryable}).encode())
        return 0
    _write(folder / ARTIFACT_FILE, compiled.artifact)
    _write(folder / KERNEL_FILE, compiled.kernel.SerializeToString())
    result = {"seconds": compiled.compile_seconds, "notes": list(compiled.notes), "pid": os.getpid()}
    # Written last: its presence says the other files are whole.
    _write(folder / RESULT_FILE, json.dumps(result).encode())
    return 0


def toolchain_request(folder_name: str) -> int:
    """Child side: write the toolchain hash of the request's worker settings."""
    from esper.tezzeret.toolchain import toolchain_hash

    folder = Path(folder_name)
    request = json.loads((folder / REQUEST_FILE).read_text(encoding="utf-8"))
    _write(folder / TOOLCHAIN_FILE, toolchain_hash(TezzeretConfig(**request["config"])).encode())
    return 0


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
