"""The node features of Tamiyo's observation graph, computed column by column.

A run may have thousands of seeds: the columns come from numpy arrays (the packet's,
the layout's kept between boundaries) and only the seeds Tamiyo remembers something
about (adaptations, embargoes, nesting) are visited one by one.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from esper.leyline.v1 import blueprint_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.observation import ACTIVE_STAGES, Observation
from esper.tamiyo.schema import (
    FAMILY_BUCKETS,
    KERNEL_FEATURES,
    KERNEL_TAGS,
    KINDS,
    LAYER_FEATURES,
    LAYER_TYPES,
    PIPELINES,
    SEED_COLUMN,
    SEED_FEATURES,
    STAGES,
    KernelCandidate,
)
from esper.tamiyo.state import RunState

_STAGE_ARRAY = np.array(sorted(STAGES), dtype=np.int64)
_ACTIVE_ARRAY = np.array(sorted(ACTIVE_STAGES), dtype=np.int64)
_NO_TELEMETRY = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def seed_features(observation: Observation, state: RunState, parents: Mapping[str, str]) -> np.ndarray:
    """Seed rows, computed column by column (a run may have thousands of seeds)."""
    seeds = observation.seeds
    layout = observation.layout
    n = len(seeds)
    rows = np.zeros((n, len(SEED_FEATURES)), dtype=np.float32)
    if n == 0:
        return rows
    packed = _packed_columns(observation)
    telemetry = np.array(
        [
            (
                1.0,
                t.activation_mean,
                t.activation_std,
                t.gradient_norm,
                t.eval_gain,
                t.parameter_count,
                t.isolation_violations,
                t.is_ready_for_transition,
            )
            if (t := v.telemetry) is not None
            else _NO_TELEMETRY
            for v in seeds
        ],
        dtype=np.float64,
    )
    packed[:, 6] = np.maximum(packed[:, 6], telemetry[:, 7])  # ready: the packet's mask or the telemetry
    first = len(STAGES)
    stage_column = np.searchsorted(_STAGE_ARRAY, packed[:, 0].astype(np.int64))
    rows[np.arange(n), np.minimum(stage_column, first - 1)] = 1.0
    params = telemetry[:, 5]
    depth = max(1.0, float(layout.layer_index.max()))
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            "alpha": packed[:, 1],
            "log_variance": _log_array(packed[:, 2]),
            "dead_node_ratio": packed[:, 3],
            "avg_correlation": packed[:, 4],
            "activation_mean": np.tanh(np.nan_to_num(telemetry[:, 1])),
            "log_activation_std": _log_array(telemetry[:, 2]),
            "log_gradient_norm": _log_array(telemetry[:, 3]),
            "epochs_since_graft": np.clip(packed[:, 5] / 10.0, 0.0, 3.0),
            "ready": packed[:, 6],
            "eval_gain": np.clip(10.0 * np.nan_to_num(telemetry[:, 4]), -3.0, 3.0),
            "log_parameters": _log_array(params) / 10.0,
            "parameter_ratio": np.clip(params / max(1, observation.model_parameters), 0.0, 4.0),
            "isolation_violated": (telemetry[:, 6] > 0).astype(np.float64),
            "relative_depth": layout.layer_index / depth,
            "log_width": np.log2(np.maximum(1.0, layout.width)) / 10.0,
            "has_telemetry": telemetry[:, 0],
            "growth_width": (layout.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH).astype(np.float64),
            "log_output_width": np.log2(np.maximum(1.0, layout.output_width)) / 10.0,
            "log_layer_units": np.log2(1.0 + layout.layer_units) / 10.0,
        }
    for name, column in columns.items():
        rows[:, SEED_COLUMN[name]] = column
    kinds = layout.input_kind
    for offset, kind in enumerate(KINDS):
        rows[:, SEED_COLUMN["kind_features"] + offset] = kinds == kind
    dead, redundant, collapsed = _normalised(packed[:, 3]), _normalised(packed[:, 4]), _normalised(-packed[:, 2])
    rows[:, SEED_COLUMN["bottleneck_dead"]] = dead
    rows[:, SEED_COLUMN["bottleneck_redundant"]] = redundant
    rows[:, SEED_COLUMN["bottleneck_collapsed"]] = collapsed
    _run_state_columns(rows, observation, state, parents)
    return rows


def _packed_columns(observation: Observation) -> np.ndarray:
    """[seeds, 7]: stage, alpha, variance, dead, correlation, epochs since graft, ready (packet's)."""
    packed = observation.packed
    if packed is not None:
        return np.stack(
            [
                packed.stage.astype(np.float64),
                packed.alpha,
                packed.variance,
                packed.dead,
                packed.correlation,
                packed.since_graft,
                packed.ready.astype(np.float64),
            ],
            axis=1,
        )
    return np.array(
        [
            (
                v.features.stage,
                v.features.alpha,
                v.features.chunk_variance,
                v.features.dead_node_ratio,
                v.features.avg_correlation,
                v.features.epochs_since_graft,
                v.features.is_ready_for_transition,
            )
            for v in observation.seeds
        ],
        dtype=np.float64,
    ).reshape(len(observation.seeds), 7)


def _run_state_columns(rows: np.ndarray, observation: Observation, state: RunState, parents: Mapping[str, str]) -> None:
    """What Tamiyo remembers: adaptations, embargoes and nesting touch few seeds, so only those rows."""
    epoch = observation.epoch
    index = observation.rows
    column = SEED_COLUMN
    for seed_id, a in state.adaptations.items():
        row = index.get(seed_id)
        if row is None:
            continue
        rows[row, column["tracked"]] = 1.0
        rows[row, column["epochs_in_stage"]] = _clip(a.epochs_in_stage(epoch) / 10.0, 0.0, 3.0)
        rows[row, column["score_since_germination"]] = _clip(10.0 * (observation.score - a.pre_metric), -3.0, 3.0)
        rows[row, column["epochs_active"]] = _clip(a.epochs_active(epoch) / 10.0, 0.0, 3.0)
    for seed_id, until in state.embargo_until.items():
        row = index.get(seed_id)
        if row is not None and epoch < until:
            rows[row, column["embargoed"]] = 1.0
            rows[row, column["embargo_left"]] = _clip((until - epoch) / 10.0, 0.0, 3.0)
    for child in parents:
        row = index.get(child)
        if row is not None:
            rows[row, column["is_child"]] = 1.0


def _normalised(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


@dataclass(frozen=True)
class _LayerTable:
    """The host's layers as columns."""

    paths: tuple[str, ...]
    kind: np.ndarray  # column of the layer-type one-hot
    in_width: np.ndarray
    out_width: np.ndarray
    parameters: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def layers(observation: Observation) -> tuple[_LayerTable, np.ndarray]:
    """The host's layers and, per seed row, the layer it monitors.

    Without host layers in the request, each distinct seed layer index stands for one layer.
    """
    layout = observation.layout
    host = observation.host_layers
    if host:
        by_seed = {seed_id: index for index, layer in enumerate(host) for seed_id in layer.seed_ids}
        last = len(host) - 1
        monitors = np.fromiter(
            (
                by_seed.get(seed_id, min(int(layer), last))
                for seed_id, layer in zip(layout.seed_ids, layout.layer_index, strict=True)
            ),
            dtype=np.int64,
            count=len(layout.seed_ids),
        )
        table = _LayerTable(
            paths=tuple(layer.module_path for layer in host),
            kind=np.array([LAYER_TYPES.index(h.module_type) if h.module_type in LAYER_TYPES else 2 for h in host]),
            in_width=np.array([h.in_width for h in host], dtype=np.float64),
            out_width=np.array([h.out_width for h in host], dtype=np.float64),
            parameters=np.array([h.parameter_count for h in host], dtype=np.float64),
        )
        return table, monitors
    indices, first, position = np.unique(layout.layer_index, return_index=True, return_inverse=True)
    widths = np.array([layout.shapes[row][0] if layout.shapes[row] else 0 for row in first.tolist()], dtype=np.float64)
    table = _LayerTable(
        paths=tuple(f"layer{index}" for index in indices.tolist()),
        kind=np.full(len(indices), 2, dtype=np.int64),
        in_width=widths,
        out_width=widths,
        parameters=np.zeros(len(indices), dtype=np.float64),
    )
    return table, position.reshape(-1).astype(np.int64)


def layer_features(layers: _LayerTable, monitors: np.ndarray) -> np.ndarray:
    count = len(layers)
    rows = np.zeros((count, len(LAYER_FEATURES)), dtype=np.float32)
    if count == 0:
        return rows
    rows[np.arange(count), layers.kind] = 1.0
    rows[:, 3] = np.log2(np.maximum(1.0, layers.in_width)) / 10.0
    rows[:, 4] = np.log2(np.maximum(1.0, layers.out_width)) / 10.0
    rows[:, 5] = np.log1p(layers.parameters) / 10.0
    rows[:, 6] = np.arange(count) / max(1, count - 1)
    rows[:, 7] = np.bincount(monitors, minlength=count)[:count] if monitors.size else 0.0
    return rows


def global_features(
    observation: Observation, state: RunState, config: TamiyoConfig, previous_score: float | None
) -> np.ndarray:
    epoch, final = observation.epoch, observation.final_epoch
    score = _finite(observation.score)
    active_rows = np.isin(observation.stages, _ACTIVE_ARRAY)
    for seed_id in state.adaptations:
        if seed_id in observation.rows:
            active_rows[observation.rows[seed_id]] = True
    active = int(active_rows.sum())
    failures = state.failure_epochs(config.embargo_epochs)
    recent = sum(1 for failed in failures.values() if epoch - failed < config.trouble_window_epochs)
    budget = max_parameters(config)
    row = np.array(
        [
            epoch / final if final else 0.0,
            _clip((final - epoch) / 20.0, 0.0, 2.0) if final else 0.0,
            float(final > 0),
            score,
            _finite(state.best_val_score),
            _clip(10.0 * (score - previous_score), -3.0, 3.0) if previous_score is not None else 0.0,
            _clip(state.epochs_since_improvement / 10.0, 0.0, 3.0),
            float(state.epochs_since_improvement >= config.patience),
            float(epoch < config.warmup_epochs),
            _log(_finite(observation.training_loss)),
            _log(_finite(observation.validation_loss)),
            _clip(_finite(observation.validation_loss) - _finite(observation.training_loss), -3.0, 3.0),
            _log(float(observation.model_parameters)) / 10.0,
            _clip(observation.model_parameters / budget, 0.0, 2.0) if budget else 0.0,
            float(budget > 0),
            active / max(1, config.max_concurrent_seeds),
            float(state.conservative_mode),
            _clip(recent / 4.0, 0.0, 2.0),
            float(observation.finite),
            _log(float(len(observation.seeds))) / 10.0,
        ],
        dtype=np.float32,
    )
    return row.reshape(1, -1)


def kernel_features(candidates: Sequence[KernelCandidate], state: RunState, model_parameters: int) -> np.ndarray:
    rows = np.zeros((len(candidates), len(KERNEL_FEATURES)), dtype=np.float32)
    base = FAMILY_BUCKETS
    tags_at = base + 5
    after_tags = tags_at + len(KERNEL_TAGS)
    for row, candidate in enumerate(candidates):
        kernel = candidate.kernel
        rows[row, template_family_bucket(kernel.template_id or kernel.blueprint_id)] = 1.0
        rows[row, base] = _log(float(kernel.parameter_count)) / 10.0
        rows[row, base + 1] = _clip(kernel.parameter_count / max(1, model_parameters), 0.0, 4.0)
        if kernel.pipeline in PIPELINES:
            rows[row, base + 2 + PIPELINES.index(kernel.pipeline)] = 1.0
        for tag in kernel.tags:
            if tag in KERNEL_TAGS:
                rows[row, tags_at + KERNEL_TAGS.index(tag)] = 1.0
        has_report = kernel.HasField("validation_report")
        report = kernel.validation_report
        rows[row, after_tags : after_tags + 8] = (
            _log(report.latency_ms_mean),
            _log(report.latency_ms_p99),
            _log(report.memory_mb_peak),
            _log(report.precision_drift_vs_fp32 * 1e6) / 10.0,
            float(report.passed),
            float(has_report),
            _clip(state.blueprint_scores.get(kernel.blueprint_id, 0) / 3.0, -1.0, 1.0),
            float((kernel.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH) == blueprint_pb2.GROWTH_KIND_WIDTH),
        )
    return rows


def template_family_bucket(template_id: str) -> int:
    """Bucket of a template's family: its id up to the first digit or '_' ("mlp_relu_e2" -> "mlp")."""
    family = ""
    for char in template_id:
        if char.isdigit() or char == "_":
            break
        family += char
    return zlib.crc32((family or template_id).encode("utf-8")) % FAMILY_BUCKETS


def max_parameters(config: TamiyoConfig) -> int:
    """The model's parameter budget when the configuration sets one, else 0."""
    return int(config.max_parameters)


def _log(value: float) -> float:
    """log1p of a non-negative magnitude; 0 for anything non-finite or negative."""
    return math.log1p(value) if math.isfinite(value) and value > 0 else 0.0


def _log_array(values: np.ndarray) -> np.ndarray:
    """Element-wise `_log`."""
    clean = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    return np.log1p(clean)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value)) if math.isfinite(value) else 0.0


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
