"""Which device a run trains on: "auto" (CUDA when there is one), "cpu" or "cuda"."""

from __future__ import annotations

import torch

from esper.errors import FailedPrecondition, InvalidArgument


def resolve_device(name: str | torch.device, field: str = "device") -> torch.device:
    """The torch device `name` means here; FailedPrecondition when it asks for CUDA on a machine without it."""
    if isinstance(name, torch.device):
        requested = name
    elif name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    elif isinstance(name, str) and (name in ("cpu", "cuda") or name.startswith("cuda:")):
        requested = torch.device(name)
    else:
        raise InvalidArgument.for_field(field, f"must be auto, cpu, cuda or cuda:N, got {name!r}")
    if requested.type == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition(f"{field}: {requested} was asked for, but this machine has no CUDA device")
    if requested.type not in ("cpu", "cuda"):
        raise InvalidArgument.for_field(field, f"must be a CPU or CUDA device, got {requested}")
    return requested


def device_kind(device: torch.device) -> str:
    """The kind of hardware kernels are built for: "cpu" or "cuda"."""
    return "cuda" if device.type == "cuda" else "cpu"
