"""Toolchain hash and kernel ids (docs/assets.md, "Kernel ids").

A kernel id is `<ir sha256 12>-<hardware target>-<pipeline>-<toolchain hash 8>`.
The toolchain hash covers everything besides the IR that decides the artifact's
bytes or behaviour: torch and Python versions, the CPU capability Inductor
generates code for, the C++ compiler, and every pipeline setting (export bounds,
decomposition table, folding, numerics gate, Inductor options). Changing any of
them gives new kernel ids, so a cached kernel is never served for a toolchain
that did not build it. One hash covers all three pipelines, as the worker's
status reports one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import platform
import re
from typing import Any

import torch

from esper.ids import MINTED_KERNEL_ID
from esper.pipelines import pipeline_name
from esper.tezzeret.config import TezzeretConfig

logger = logging.getLogger(__name__)

# Bumped when the pipelines change what they emit for the same settings (2: signed kernels).
ARTIFACT_FORMAT_VERSION = 2
DECOMPOSITION_TABLE = "core_aten"
# Options handed to Inductor for AGGRESSIVE; `freezing` bakes the weights into the kernel.
INDUCTOR_OPTIONS: dict[str, Any] = {"freezing": True, "aot_inductor.package_constants_in_so": True}


def toolchain_settings(config: TezzeretConfig) -> dict[str, Any]:
    """Everything the toolchain hash covers, as plain JSON-able values."""
    return {
        "format": ARTIFACT_FORMAT_VERSION,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cxx": cxx_compiler_version(),
        "export": {"batch_min": 1, "batch_max": config.max_batch, "example_batch": config.example_batch_size},
        "standard": {
            "decompositions": DECOMPOSITION_TABLE,
            "folding": "non_trainable_constants",
            "numerics_tolerance": config.numerics_tolerance,
            "numerics_batch_sizes": list(config.numerics_batch_sizes),
            "numerics_seed": config.numerics_seed,
        },
        "aggressive": {"inductor": INDUCTOR_OPTIONS},
    }


def toolchain_hash(config: TezzeretConfig) -> str:
    """Full hex SHA-256 of the canonical JSON of `toolchain_settings`."""
    canonical = json.dumps(toolchain_settings(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def kernel_id(ir_sha256: str, hardware_target: str, pipeline: int, toolchain: str) -> str:
    """The kernel id of docs/assets.md, e.g. "3f2a9c01b7de-cpu_x86_64-standard-a1c3b2e4"."""
    return f"{ir_sha256[:12]}-{hardware_target}-{pipeline_name(pipeline)}-{toolchain[:8]}"


def is_kernel_id(value: str) -> bool:
    return MINTED_KERNEL_ID.fullmatch(value) is not None


@functools.cache
def cxx_compiler_version() -> str:
    """The C++ compiler Inductor would use and its version line; "unknown" if there is none."""
    try:
        from torch._inductor import cpp_builder

        compiler = cpp_builder.get_cpp_compiler()
        info = cpp_builder.get_compiler_version_info(compiler)
    except Exception as exc:  # no compiler only matters to AGGRESSIVE, which then fails with the reason
        logger.warning("no C++ compiler found for Inductor: %s", exc)
        return "unknown"
    versions = re.findall(r"(?:gcc|clang) version [^\s_]+", info)
    return f"{compiler}: {versions[-1] if versions else info[-200:]}"
