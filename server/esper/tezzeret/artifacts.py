"""Artifact bytes -> runnable module: the one place a kernel artifact is loaded.

FAST and STANDARD artifacts are `torch.export` programs (.pt2 archives) and load
with `torch.export.load(...).module()`: a trainable module. AGGRESSIVE artifacts
are AOTInductor packages (.pt2 archives holding a compiled shared library with
the weights baked in) and load with `torch._inductor.aoti_load_package`, wrapped
in `FrozenKernel`: inference only, no parameters, no autograd.

torch.export.load falls back to unrestricted unpickling for payloads an archive
marks as pickled, and for sample inputs that weights_only loading refuses. Those
paths are never reached here: `check_artifact` (esper.trust.artifact_format)
opens the archive first and refuses duplicate entry names, any pickled payload or
non-empty sample inputs, any custom-object constant, and any entry outside the
layout its pipeline produces (no native code in a program archive, no program in
a package). Callers verify the artifact's SHA-256 and its signature
(esper.trust.kernel_signing) before calling this.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import Tensor, nn

from esper.tezzeret.export_lock import EXPORT_LOCK
from esper.trust.artifact_format import PROGRAM_PIPELINES, check_artifact_format


class FrozenKernel(nn.Module):
    """An AOTInductor-compiled kernel as a module: fixed weights, no parameters, no autograd."""

    def __init__(self, runner: Any) -> None:
        super().__init__()
        self._runner = runner

    def forward(self, x: Tensor) -> Tensor:
        out = self._runner(x)
        return out[0] if isinstance(out, list | tuple) else out


def load_kernel_module(data: bytes, pipeline: int) -> nn.Module:
    """A runnable module from artifact bytes; FailedPrecondition if they are not a safe artifact."""
    check_artifact(data, pipeline)
    with EXPORT_LOCK:  # torch's deserializer state is process-wide (esper.tezzeret.export_lock)
        if pipeline in PROGRAM_PIPELINES:
            program = torch.export.load(io.BytesIO(data))
            return program.module()
        from torch._inductor import aoti_load_package

        return FrozenKernel(aoti_load_package(io.BytesIO(data)))


def check_artifact(data: bytes, pipeline: int) -> None:
    """Refuse bytes that are not a clean archive of `pipeline`'s layout (esper.trust.artifact_format)."""
    check_artifact_format(data, pipeline)
