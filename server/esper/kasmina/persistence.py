"""Saving a grown model and loading it back: `model.pt` (weights) and `lineage.json` (how it grew).

`model.pt` is a plain state_dict of tensors (host weights and every FOSSILIZED
seed's kernel), readable with `torch.load(weights_only=True)`. `lineage.json`
records the host (its class and, for Esper's own hosts, the spec that rebuilds it),
the Kasmina config, and every seed: placement (depth or width, its site, and the
seed it grew from: the tree of regrowth, with each seed's `children`), stage,
kernel, blueprint and template ids, the blueprint IR (protobuf JSON), alpha,
epochs and eval gain.

`load_model` rebuilds the host (from its spec, or the module you pass), places the
seeds, builds each FOSSILIZED kernel eagerly from its IR with esper.ir.build_module
(whose state_dict keys are those of the exported kernel) and loads the weights.
Seeds still mid-adaptation when the model was saved are recorded but not kept: the
saved model is the host plus its fossils.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from google.protobuf import json_format
from torch import nn

from esper.errors import FailedPrecondition, InvalidArgument
from esper.fsutil import atomic_write, atomic_writer
from esper.ir import build_module
from esper.kasmina import convert
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.morphable import MorphableModel
from esper.kasmina.records import SeedSnapshot
from esper.leyline.v1 import telemetry_pb2

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
LINEAGE_FILE = "lineage.json"
LINEAGE_FORMAT = 1

# Rebuilds a host from the spec dict recorded in lineage.json.
HostBuilder = Callable[[dict[str, Any]], nn.Module]


def save_model(model: MorphableModel, path: str | os.PathLike[str], *, host_spec: Any = None) -> Path:
    """Write `path`/model.pt and `path`/lineage.json; returns the folder.

    `host_spec` (a dataclass with `to_dict`, a dataclass or a dict) lets load_model
    rebuild the host; by default the host's own `spec` attribute is used if it has one.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    fossils = []
    for index, seed in enumerate(model.seed_list()):
        if seed.stage != lc.FOSSILIZED:
            continue
        if seed.merged:
            continue  # its units are host weights now
        if seed.adaptation is None or seed.adaptation.ir is None:
            raise FailedPrecondition(
                f"seed {seed.seed_id} is fossilized but its blueprint IR is unknown; it could not be rebuilt"
            )
        fossils.append(f"seeds.{index}.")
    weights = {
        key: tensor.detach().clone()
        for key, tensor in model.state_dict().items()
        if key.startswith("host.") or key.startswith(tuple(fossils))
    }
    lineage = {
        "format": LINEAGE_FORMAT,
        "host": {
            "class": _class_path(model.host),
            "spec": _spec_dict(host_spec if host_spec is not None else getattr(model.host, "spec", None)),
        },
        "kasmina": _config_dict(model.config),
        "seeds": [_seed_entry(seed, _children(model, seed.seed_id)) for seed in model.seed_list()],
    }
    with atomic_writer(folder / MODEL_FILE) as handle:
        torch.save(weights, handle)
    text = json.dumps(lineage, indent=2, sort_keys=True).encode("utf-8")
    atomic_write(folder / LINEAGE_FILE, text)
    logger.info("saved model to %s (%d fossilized seeds)", folder, len(fossils))
    return folder


def load_model(
    path: str | os.PathLike[str], host: nn.Module | None = None, *, host_builder: HostBuilder | None = None
) -> MorphableModel:
    """The saved model: its host (rebuilt from the recorded spec, or `host`) with its fossilized seeds."""
    folder = Path(path)
    lineage = json.loads((folder / LINEAGE_FILE).read_text(encoding="utf-8"))
    if lineage.get("format") != LINEAGE_FORMAT:
        raise InvalidArgument.for_field("lineage.format", f"must be {LINEAGE_FORMAT}, got {lineage.get('format')!r}")
    if host is None:
        host = _rebuild_host(lineage["host"], host_builder)
    elif _class_path(host) != lineage["host"]["class"]:
        logger.warning("loading onto a %s; the model was saved from a %s", _class_path(host), lineage["host"]["class"])
    entries = lineage["seeds"]
    layout = [json_format.ParseDict(entry["descriptor"], telemetry_pb2.SeedDescriptor()) for entry in entries]
    model = MorphableModel(host, layout, _config_from_dict(lineage["kasmina"]))
    for entry, descriptor in zip(entries, layout, strict=True):
        if entry["stage"] != lc.stage_name(lc.FOSSILIZED):
            continue
        adaptation = convert.adaptation_from_dict(entry["adaptation"])
        if adaptation.ir is None:
            raise InvalidArgument.for_field(f"lineage.seeds[{descriptor.seed_id}].adaptation.ir", "is missing")
        snapshot = SeedSnapshot(
            stage=lc.FOSSILIZED,
            alpha=1.0,
            stage_entry_epoch=adaptation.fossilization_epoch or 0,
            adaptation=adaptation,
        )
        model.seed(descriptor.seed_id).restore(snapshot, None if adaptation.merged else build_module(adaptation.ir))
    weights = torch.load(folder / MODEL_FILE, weights_only=True, map_location="cpu")
    from_ir = {f"seeds.{index}." for index, entry in enumerate(entries) if entry.get("kernel_weights") == "ir_init"}
    _load_weights(model, weights, from_ir)
    return model


def _load_weights(model: MorphableModel, weights: dict[str, Any], from_ir: set[str]) -> None:
    """Load strictly, except that fossils under the `from_ir` prefixes keep their IR's initial weights.

    A kernel compiled ahead of time (AGGRESSIVE pipeline) holds its weights frozen
    inside the compiled code, not as parameters; they are the IR's deterministic
    initial weights, which build_module reproduces.
    """
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise InvalidArgument.for_field("model.pt", f"unexpected weights: {', '.join(result.unexpected_keys)}")
    missing = [key for key in result.missing_keys if not key.startswith(tuple(from_ir))]
    if missing:
        raise InvalidArgument.for_field("model.pt", f"missing weights: {', '.join(missing)}")


def _children(model: MorphableModel, seed_id: str) -> list[str]:
    return [seed.seed_id for seed in model.seed_list() if seed.descriptor.parent_seed_id == seed_id]


def _seed_entry(seed: Any, children: list[str]) -> dict[str, Any]:
    adaptation = seed.adaptation
    return {
        "descriptor": json_format.MessageToDict(seed.descriptor),
        "children": children,
        "stage": lc.stage_name(seed.stage),
        "alpha": seed.alpha,
        "embargo_until_epoch": seed.embargo_until_epoch,
        "isolation_violations": seed.isolation_violations,
        "adaptation": convert.adaptation_to_dict(adaptation) if adaptation is not None else None,
        # "ir_init": a fossil whose kernel has no parameters (compiled with its weights frozen inside);
        # "merged": a width fossil whose units are rows and columns of the host's layers.
        "kernel_weights": "merged"
        if seed.merged
        else "saved"
        if seed.kernel_parameters()
        else "ir_init"
        if seed.kernel is not None
        else "",
    }


def _class_path(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _spec_dict(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    if hasattr(spec, "to_dict"):
        return dict(spec.to_dict())
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.asdict(spec)
    if isinstance(spec, Mapping):
        return dict(spec)
    raise InvalidArgument.for_field("host_spec", f"must be a dataclass or a mapping, got {type(spec).__name__}")


def _rebuild_host(recorded: dict[str, Any], builder: HostBuilder | None) -> nn.Module:
    spec = recorded.get("spec")
    if spec is None:
        raise FailedPrecondition(
            f"the saved host ({recorded.get('class')}) has no recorded spec; pass the host to load_model"
        )
    if builder is not None:
        return builder(spec)
    from esper.hosts import HostSpec, build_host

    return build_host(HostSpec.from_dict(spec))


def _config_dict(config: KasminaConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}


def _config_from_dict(data: dict[str, Any]) -> KasminaConfig:
    known = {field.name for field in dataclasses.fields(KasminaConfig)}
    values: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in data.items() if key in known
    }
    return KasminaConfig(**values)
