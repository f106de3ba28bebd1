"""Checks of every Tamiyo request, in one place.

Each `check_<rpc>` raises InvalidArgument naming the offending field (or
FailedPrecondition with reason SCHEMA_VERSION_UNSUPPORTED for a packet from another
Leyline schema version). `check_step` returns the packet's per-seed features,
decoded against the request's seed layout, so the controller never decodes twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from esper import checks, ids
from esper.errors import FailedPrecondition, InvalidArgument
from esper.leyline.v1 import lifecycle_pb2, tamiyo_pb2, telemetry_pb2
from esper.state import SeedFeatures, unpack_seed_features
from esper.state.packet import SCHEMA_VERSION
from esper.tamiyo.observation import ACTIVE_STAGES
from esper.trust.inputs import quote

SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
MAX_SEEDS = 16_384
# A host's weight layers (the observation graph's layer nodes) and the length of their names.
MAX_HOST_LAYERS = 16_384
MAX_MODULE_PATH = 256

_STAGES = frozenset(lifecycle_pb2.SeedStage.values()) - {lifecycle_pb2.SEED_STAGE_UNSPECIFIED}
_DIRECTIONS = frozenset(lifecycle_pb2.MetricDirection.values())
_PACKET_ARRAYS = (
    "seed_stages",
    "seed_alpha_bp",
    "seed_variance_bp",
    "seed_dead_bp",
    "seed_correlation_bp",
    "seed_epochs_since_graft",
)


def check_step(request: tamiyo_pb2.StepRequest, *, max_seeds: int = MAX_SEEDS) -> list[SeedFeatures]:
    if not request.HasField("packet"):
        raise InvalidArgument.for_field("packet", "is required")
    packet = request.packet
    if packet.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
        raise FailedPrecondition(
            f"packet.schema_version {packet.schema_version} is not supported (supported: {supported})",
            reason="SCHEMA_VERSION_UNSUPPORTED",
        )
    ids.RUN.check("packet.run_id", packet.run_id)
    accuracy = packet.validation_accuracy
    if math.isfinite(accuracy) and not 0.0 <= accuracy <= 1.0:
        raise InvalidArgument.for_field("packet.validation_accuracy", f"must be in [0, 1], got {accuracy}")
    if packet.metric_direction not in _DIRECTIONS:
        direction = packet.metric_direction
        raise InvalidArgument.for_field("packet.metric_direction", f"{direction} is not a MetricDirection")
    seed_ids = _check_layout(request.seed_layout, max_seeds)
    for name in _PACKET_ARRAYS:
        length = len(getattr(packet, name))
        if length != len(seed_ids):
            raise InvalidArgument.for_field(
                f"packet.{name}", f"holds {length} values but seed_layout has {len(seed_ids)} seeds"
            )
    for index, stage in enumerate(packet.seed_stages):
        if stage not in _STAGES:
            raise InvalidArgument.for_field(f"packet.seed_stages[{index}]", f"{stage} is not a seed stage")
    try:
        features = unpack_seed_features(packet, seed_ids)
    except ValueError as exc:
        raise InvalidArgument.for_field("packet.layout_hash", f"{exc} (seed_layout in request)") from exc
    _check_host_layers(request.host_layers, set(seed_ids))
    if request.device_kind and request.device_kind not in ("cpu", "cuda"):
        raise InvalidArgument.for_field("device_kind", f"must be cpu or cuda, got {request.device_kind!r}")
    accuracy_run = packet.metric_direction == lifecycle_pb2.METRIC_DIRECTION_UNSPECIFIED
    _check_telemetry(request.telemetry, packet.run_id, set(seed_ids), accuracy_run=accuracy_run)
    return features


def check_get_status(request: tamiyo_pb2.GetStatusRequest) -> None:
    ids.RUN.check("run_id", request.run_id, required=False)


def check_load_policy(request: tamiyo_pb2.LoadPolicyRequest) -> None:
    # Only ids: a Tamiyo server never opens a file named by a caller.
    ids.POLICY.check("policy_id", request.policy_id, required=not request.follow_updates)


def check_export_controller_state(request: tamiyo_pb2.ExportControllerStateRequest) -> None:
    ids.RUN.check("run_id", request.run_id)


def check_restore_controller_state(request: tamiyo_pb2.RestoreControllerStateRequest) -> None:
    """The state must be one Tamiyo could have exported. Deprecated per-seed maps are ignored."""
    if not request.HasField("state"):
        raise InvalidArgument.for_field("state", "is required")
    state = request.state
    ids.RUN.check("state.run_id", state.run_id)
    # Scores of any metric (a negated loss too): finite is all that holds for every run.
    checks.finite("state.best_val_accuracy", state.best_val_accuracy)
    for seed_id in state.embargo_until:
        ids.SEED.check("state.embargo_until", seed_id)
    for blueprint_id in state.blueprint_scores:
        ids.BLUEPRINT.check("state.blueprint_scores", blueprint_id)
    seen: set[str] = set()
    for index, adaptation in enumerate(state.active_adaptations):
        prefix = f"state.active_adaptations[{index}]"
        ids.SEED.check(f"{prefix}.seed_id", adaptation.seed_id)
        if adaptation.seed_id in seen:
            raise InvalidArgument.for_field(f"{prefix}.seed_id", f"{adaptation.seed_id!r} appears twice")
        seen.add(adaptation.seed_id)
        ids.COMMAND.check(f"{prefix}.germination_command_id", adaptation.germination_command_id)
        ids.KERNEL.check(f"{prefix}.kernel_id", adaptation.kernel_id)
        if adaptation.last_stage not in ACTIVE_STAGES:
            raise InvalidArgument.for_field(
                f"{prefix}.last_stage", "must be a stage between germination and an outcome"
            )
        if adaptation.stage_entry_epoch < adaptation.germination_epoch:
            raise InvalidArgument.for_field(f"{prefix}.stage_entry_epoch", "is before the germination epoch")
        checks.finite(f"{prefix}.pre_metric", adaptation.pre_metric)
        checks.finite(f"{prefix}.eval_gain", adaptation.eval_gain)
    for index, step in enumerate(state.growth_steps):
        prefix = f"state.growth_steps[{index}]"
        ids.SEED.check(f"{prefix}.seed_id", step.seed_id)
        checks.finite(f"{prefix}.accuracy_gain", step.accuracy_gain)


def _check_layout(layout: Sequence[telemetry_pb2.SeedDescriptor], max_seeds: int) -> list[str]:
    if len(layout) > max_seeds:
        raise InvalidArgument.for_field("seed_layout", f"holds {len(layout)} seeds; at most {max_seeds} per run")
    seed_ids: list[str] = []
    seen: set[str] = set()
    for index, descriptor in enumerate(layout):
        ids.SEED.check(f"seed_layout[{index}].seed_id", descriptor.seed_id)
        if descriptor.seed_id in seen:
            raise InvalidArgument.for_field(
                f"seed_layout[{index}].seed_id", f"{quote(descriptor.seed_id)} appears twice"
            )
        seen.add(descriptor.seed_id)
        seed_ids.append(descriptor.seed_id)
    return seed_ids


def _check_host_layers(host_layers: Sequence[telemetry_pb2.HostLayer], seed_ids: set[str]) -> None:
    """Bounded, named within limits, and watched only by seeds of the layout."""
    if len(host_layers) > MAX_HOST_LAYERS:
        raise InvalidArgument.for_field("host_layers", f"holds {len(host_layers)} layers; at most {MAX_HOST_LAYERS}")
    for index, layer in enumerate(host_layers):
        for name in ("module_path", "module_type"):
            value = getattr(layer, name)
            if len(value) > MAX_MODULE_PATH:
                raise InvalidArgument.for_field(
                    f"host_layers[{index}].{name}", f"{quote(value)} is longer than {MAX_MODULE_PATH} characters"
                )
        for seed_id in layer.seed_ids:
            if seed_id not in seed_ids:
                raise InvalidArgument.for_field(
                    f"host_layers[{index}].seed_ids", f"{quote(seed_id)} is not in seed_layout"
                )


def _check_telemetry(
    telemetry: Sequence[telemetry_pb2.SeedTelemetry], run_id: str, seed_ids: set[str], *, accuracy_run: bool
) -> None:
    seen: set[str] = set()
    for index, report in enumerate(telemetry):
        prefix = f"telemetry[{index}]"
        if report.seed_id not in seed_ids:
            raise InvalidArgument.for_field(f"{prefix}.seed_id", f"{report.seed_id!r} is not in seed_layout")
        if report.seed_id in seen:
            raise InvalidArgument.for_field(f"{prefix}.seed_id", f"{report.seed_id!r} appears twice")
        seen.add(report.seed_id)
        if report.run_id and report.run_id != run_id:
            raise InvalidArgument.for_field(f"{prefix}.run_id", f"is {report.run_id!r}, the packet's is {run_id!r}")
        if accuracy_run:
            checks.in_range(f"{prefix}.eval_gain", report.eval_gain, -1.0, 1.0)
        else:
            checks.finite(f"{prefix}.eval_gain", report.eval_gain)
