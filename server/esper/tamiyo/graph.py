"""Tamiyo's observation as a typed graph (HLD seed 004, Appendix C.3).

Node types, one feature row each (the column names are `*_FEATURES`, their
version `FEATURE_SCHEMA_VERSION`; a policy reads only graphs of the version it
was trained on):
  seed    every Kasmina seed, in layout order: stage, alpha, health signals,
          epochs in stage, measured gain, parameters, embargo, where it sits;
  layer   every weight layer of the host (kind, widths, parameters, depth);
  global  one row: epoch fraction, accuracy and loss trends, parameters against
          the budget, concurrency in use, conservative mode;
  kernel  the validated kernels a germination could use, with Urza's metadata,
          Urabrask's tags and measurements and the blueprint's outcomes in the run.
Edges (each relation with its reverse, so information flows both ways):
  seed -sequential- seed         adjacent seeds of one layer, both directions;
  layer -layer_forward-> layer   along the host, and layer_backward back;
  seed -monitors-> layer         the layer whose output the seed watches (monitored_by back);
  seed -contains-> seed          a parent seed to its nested child (child_of back);
  kernel -fits-> seed            a candidate kernel to the seeds it can grow (fitted_by back).

Everything here is numpy: building a graph costs no torch_geometric import, so a
heuristic run records its observations cheaply. `to_hetero_data` converts for the GNN.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from esper.leyline.v1 import blueprint_pb2, kernel_pb2, lifecycle_pb2, policy_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.observation import ACTIVE_STAGES, Observation
from esper.tamiyo.state import RunState

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

FEATURE_SCHEMA_VERSION = 1

SEED, LAYER, GLOBAL, KERNEL = "seed", "layer", "global", "kernel"
NODE_TYPES = (SEED, LAYER, GLOBAL, KERNEL)
EdgeType = tuple[str, str, str]
SEQUENTIAL: EdgeType = (SEED, "sequential", SEED)
LAYER_FORWARD: EdgeType = (LAYER, "layer_forward", LAYER)
LAYER_BACKWARD: EdgeType = (LAYER, "layer_backward", LAYER)
MONITORS: EdgeType = (SEED, "monitors", LAYER)
MONITORED_BY: EdgeType = (LAYER, "monitored_by", SEED)
CONTAINS: EdgeType = (SEED, "contains", SEED)
CHILD_OF: EdgeType = (SEED, "child_of", SEED)
FITS: EdgeType = (KERNEL, "fits", SEED)
FITTED_BY: EdgeType = (SEED, "fitted_by", KERNEL)
EDGE_TYPES: tuple[EdgeType, ...] = (
    SEQUENTIAL,
    LAYER_FORWARD,
    LAYER_BACKWARD,
    MONITORS,
    MONITORED_BY,
    CONTAINS,
    CHILD_OF,
    FITS,
    FITTED_BY,
)

_STAGES = tuple(stage for stage in lifecycle_pb2.SeedStage.values() if stage != lifecycle_pb2.SEED_STAGE_UNSPECIFIED)
_KINDS = (blueprint_pb2.INPUT_KIND_FEATURES, blueprint_pb2.INPUT_KIND_IMAGE, blueprint_pb2.INPUT_KIND_SEQUENCE)
_LAYER_TYPES = ("Linear", "Conv2d")
_PIPELINES = (
    kernel_pb2.COMPILATION_PIPELINE_FAST,
    kernel_pb2.COMPILATION_PIPELINE_STANDARD,
    kernel_pb2.COMPILATION_PIPELINE_AGGRESSIVE,
)
KERNEL_TAGS = (
    "high_speed",
    "medium_speed",
    "low_speed",
    "low_memory",
    "high_memory",
    "low_power",
    "high_power",
    "numerically_stable",
)
# Template families hash into this many buckets, so a catalog that grows keeps the schema.
FAMILY_BUCKETS = 16

SEED_FEATURES: tuple[str, ...] = (
    *(f"stage_{lifecycle_pb2.SeedStage.Name(s).removeprefix('SEED_STAGE_').lower()}" for s in _STAGES),
    "alpha",
    "log_variance",
    "dead_node_ratio",
    "avg_correlation",
    "activation_mean",
    "log_activation_std",
    "log_gradient_norm",
    "epochs_since_graft",
    "epochs_in_stage",
    "ready",
    "eval_gain",
    "log_parameters",
    "parameter_ratio",
    "isolation_violated",
    "embargoed",
    "embargo_left",
    "tracked",
    "accuracy_since_germination",
    "epochs_active",
    "relative_depth",
    "log_width",
    "kind_features",
    "kind_image",
    "kind_sequence",
    "bottleneck_dead",
    "bottleneck_redundant",
    "bottleneck_collapsed",
    "is_child",
    "has_telemetry",
    "growth_width",
    "log_output_width",
    "log_layer_units",
)
LAYER_FEATURES: tuple[str, ...] = (
    "type_linear",
    "type_conv2d",
    "type_other",
    "log_in_width",
    "log_out_width",
    "log_parameters",
    "relative_depth",
    "seeds_watching",
)
GLOBAL_FEATURES: tuple[str, ...] = (
    "epoch_fraction",
    "epochs_left",
    "final_epoch_known",
    "validation_accuracy",
    "best_validation_accuracy",
    "accuracy_change",
    "epochs_since_improvement",
    "plateau",
    "warmup",
    "log_training_loss",
    "log_validation_loss",
    "generalization_gap",
    "log_parameters",
    "parameter_budget_used",
    "parameter_budget_set",
    "concurrency_used",
    "conservative_mode",
    "recent_failures",
    "finite",
    "log_seeds",
)
KERNEL_FEATURES: tuple[str, ...] = (
    *(f"family_{i}" for i in range(FAMILY_BUCKETS)),
    "log_parameters",
    "parameter_ratio",
    "pipeline_fast",
    "pipeline_standard",
    "pipeline_aggressive",
    *(f"tag_{tag}" for tag in KERNEL_TAGS),
    "log_latency_ms",
    "log_latency_p99_ms",
    "log_memory_mb",
    "log_precision_drift",
    "passed",
    "has_report",
    "blueprint_score",
    "changes_width",
)
_SEED_COLUMN = {name: column for column, name in enumerate(SEED_FEATURES)}
_STAGE_ARRAY = np.array(sorted(_STAGES), dtype=np.int64)
_ACTIVE_ARRAY = np.array(sorted(ACTIVE_STAGES), dtype=np.int64)
_NO_TELEMETRY = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

FEATURE_DIMS: Mapping[str, int] = {
    SEED: len(SEED_FEATURES),
    LAYER: len(LAYER_FEATURES),
    GLOBAL: len(GLOBAL_FEATURES),
    KERNEL: len(KERNEL_FEATURES),
}


@dataclass(frozen=True)
class KernelCandidate:
    """A validated kernel a germination could use, and the seeds (rows) whose site it fits."""

    kernel: kernel_pb2.KernelArtifact
    seed_rows: tuple[int, ...]
    allowed: bool = True


@dataclass(frozen=True)
class ObservationGraph:
    """Node features and edge indices as numpy arrays (float32 features, int64 [2, E] edges)."""

    features: Mapping[str, np.ndarray]
    edges: Mapping[EdgeType, np.ndarray]
    ids: Mapping[str, tuple[str, ...]]
    schema_version: int = FEATURE_SCHEMA_VERSION

    def count(self, node_type: str) -> int:
        return int(self.features[node_type].shape[0])

    @property
    def seed_ids(self) -> tuple[str, ...]:
        return self.ids[SEED]

    @property
    def kernel_ids(self) -> tuple[str, ...]:
        return self.ids[KERNEL]

    def to_hetero_data(self) -> HeteroData:
        """The graph as a torch_geometric HeteroData (imported here: it is slow to import)."""
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for node_type in NODE_TYPES:
            features = self.features[node_type]
            data[node_type].x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
            data[node_type].num_nodes = features.shape[0]
        for edge_type in EDGE_TYPES:
            data[edge_type].edge_index = torch.from_numpy(np.ascontiguousarray(self.edges[edge_type], dtype=np.int64))
        return data


def build_graph(
    observation: Observation,
    state: RunState,
    config: TamiyoConfig,
    candidates: Sequence[KernelCandidate] = (),
    *,
    previous_accuracy: float | None = None,
    parents: Mapping[str, str] | None = None,
) -> ObservationGraph:
    """The observation graph of one boundary.

    `state` is the run's state after the boundary's bookkeeping (accuracy tracked,
    finished adaptations forgotten), before any decision. `previous_accuracy` is the
    last boundary's validation accuracy (None at the first). `parents` maps a nested
    seed's id to its parent's (CONTAINS / CHILD_OF).
    """
    parents = {**observation.layout.parents, **(parents or {})}
    layers, monitors = _layers(observation)
    seed_rows = observation.rows
    seed_x = _seed_features(observation, state, parents)
    layer_x = _layer_features(layers, monitors)
    global_x = _global_features(observation, state, config, previous_accuracy)
    kernel_x = _kernel_features(candidates, state, observation.model_parameters)
    edges = {
        SEQUENTIAL: _sequential_edges(observation),
        LAYER_FORWARD: _chain(len(layers)),
        MONITORS: np.stack([np.arange(len(monitors)), monitors]).astype(np.int64),
        CONTAINS: _pairs(
            [
                (seed_rows[parent], seed_rows[child])
                for child, parent in parents.items()
                if {child, parent} <= seed_rows.keys()
            ]
        ),
        FITS: _fits_edges(candidates),
    }
    edges[LAYER_BACKWARD] = edges[LAYER_FORWARD][::-1].copy()
    edges[MONITORED_BY] = edges[MONITORS][::-1].copy()
    edges[CHILD_OF] = edges[CONTAINS][::-1].copy()
    edges[FITTED_BY] = edges[FITS][::-1].copy()
    return ObservationGraph(
        features={SEED: seed_x, LAYER: layer_x, GLOBAL: global_x, KERNEL: kernel_x},
        edges=edges,
        ids={
            SEED: observation.layout.seed_ids,
            LAYER: layers.paths,
            GLOBAL: (),
            KERNEL: tuple(candidate.kernel.kernel_id for candidate in candidates),
        },
    )


# --- nodes ------------------------------------------------------------------------------------


def _seed_features(observation: Observation, state: RunState, parents: Mapping[str, str]) -> np.ndarray:
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
    first = len(_STAGES)
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
        rows[:, _SEED_COLUMN[name]] = column
    kinds = layout.input_kind
    for offset, kind in enumerate(_KINDS):
        rows[:, _SEED_COLUMN["kind_features"] + offset] = kinds == kind
    dead, redundant, collapsed = _normalised(packed[:, 3]), _normalised(packed[:, 4]), _normalised(-packed[:, 2])
    rows[:, _SEED_COLUMN["bottleneck_dead"]] = dead
    rows[:, _SEED_COLUMN["bottleneck_redundant"]] = redundant
    rows[:, _SEED_COLUMN["bottleneck_collapsed"]] = collapsed
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
    column = _SEED_COLUMN
    for seed_id, a in state.adaptations.items():
        row = index.get(seed_id)
        if row is None:
            continue
        rows[row, column["tracked"]] = 1.0
        rows[row, column["epochs_in_stage"]] = _clip(a.epochs_in_stage(epoch) / 10.0, 0.0, 3.0)
        rows[row, column["accuracy_since_germination"]] = _clip(10.0 * (observation.accuracy - a.pre_metric), -3.0, 3.0)
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


def _layers(observation: Observation) -> tuple[_LayerTable, np.ndarray]:
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
            kind=np.array([_LAYER_TYPES.index(h.module_type) if h.module_type in _LAYER_TYPES else 2 for h in host]),
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


def _layer_features(layers: _LayerTable, monitors: np.ndarray) -> np.ndarray:
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


def _global_features(
    observation: Observation, state: RunState, config: TamiyoConfig, previous_accuracy: float | None
) -> np.ndarray:
    epoch, final = observation.epoch, observation.final_epoch
    accuracy = _finite(observation.accuracy)
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
            accuracy,
            _finite(state.best_val_accuracy),
            _clip(10.0 * (accuracy - previous_accuracy), -3.0, 3.0) if previous_accuracy is not None else 0.0,
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


def _kernel_features(candidates: Sequence[KernelCandidate], state: RunState, model_parameters: int) -> np.ndarray:
    rows = np.zeros((len(candidates), len(KERNEL_FEATURES)), dtype=np.float32)
    base = FAMILY_BUCKETS
    tags_at = base + 5
    after_tags = tags_at + len(KERNEL_TAGS)
    for row, candidate in enumerate(candidates):
        kernel = candidate.kernel
        rows[row, template_family_bucket(kernel.template_id or kernel.blueprint_id)] = 1.0
        rows[row, base] = _log(float(kernel.parameter_count)) / 10.0
        rows[row, base + 1] = _clip(kernel.parameter_count / max(1, model_parameters), 0.0, 4.0)
        if kernel.pipeline in _PIPELINES:
            rows[row, base + 2 + _PIPELINES.index(kernel.pipeline)] = 1.0
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


# --- edges ------------------------------------------------------------------------------------


def _sequential_edges(observation: Observation) -> np.ndarray:
    """Adjacent seeds of one layer, in layout order, both directions."""
    layers = observation.layout.layer_index
    after = np.flatnonzero(layers[1:] == layers[:-1]) + 1 if layers.size > 1 else np.zeros(0, dtype=np.int64)
    forward = np.stack([after - 1, after])
    return np.concatenate([forward, forward[::-1]], axis=1).astype(np.int64)


def _fits_edges(candidates: Sequence[KernelCandidate]) -> np.ndarray:
    if not candidates:
        return _pairs([])
    kernels = np.concatenate([np.full(len(c.seed_rows), k, dtype=np.int64) for k, c in enumerate(candidates)])
    seeds = np.concatenate([np.asarray(c.seed_rows, dtype=np.int64) for c in candidates])
    return np.stack([kernels, seeds])


def _chain(count: int) -> np.ndarray:
    if count < 2:
        return _pairs([])
    return np.stack([np.arange(count - 1), np.arange(1, count)]).astype(np.int64)


def _pairs(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    if not pairs:
        return np.zeros((2, 0), dtype=np.int64)
    return np.asarray(pairs, dtype=np.int64).T.copy()


# --- proto ------------------------------------------------------------------------------------


def graph_to_proto(graph: ObservationGraph) -> policy_pb2.ObservationGraph:
    message = policy_pb2.ObservationGraph(feature_schema_version=graph.schema_version)
    for node_type in NODE_TYPES:
        message.node_sets.add(
            node_type=node_type, features=tensor_to_proto(graph.features[node_type]), ids=graph.ids[node_type]
        )
    for source, relation, target in EDGE_TYPES:
        message.edge_sets.add(
            source_type=source,
            relation=relation,
            target_type=target,
            edge_index=tensor_to_proto(graph.edges[(source, relation, target)]),
        )
    return message


def graph_from_proto(message: policy_pb2.ObservationGraph) -> ObservationGraph:
    """The graph a message holds; ValueError naming what is wrong when it is not a valid graph."""
    features: dict[str, np.ndarray] = {}
    ids: dict[str, tuple[str, ...]] = {}
    for node_set in message.node_sets:
        if node_set.node_type not in FEATURE_DIMS:
            raise ValueError(f"node_sets: unknown node type {node_set.node_type!r}")
        array = _tensor(node_set.features, f"node_sets[{node_set.node_type}].features")
        if array.ndim != 2 or array.shape[1] != FEATURE_DIMS[node_set.node_type]:
            raise ValueError(
                f"node_sets[{node_set.node_type}].features: shape {list(array.shape)}, "
                f"want [nodes, {FEATURE_DIMS[node_set.node_type]}]"
            )
        features[node_set.node_type] = array.astype(np.float32, copy=False)
        ids[node_set.node_type] = tuple(node_set.ids)
    missing = [t for t in NODE_TYPES if t not in features]
    if missing:
        raise ValueError(f"node_sets: missing node types {missing}")
    edges: dict[EdgeType, np.ndarray] = {edge_type: np.zeros((2, 0), dtype=np.int64) for edge_type in EDGE_TYPES}
    for edge_set in message.edge_sets:
        edge_type = (edge_set.source_type, edge_set.relation, edge_set.target_type)
        if edge_type not in edges:
            raise ValueError(f"edge_sets: unknown relation {edge_type}")
        index = _tensor(edge_set.edge_index, f"edge_sets[{edge_set.relation}].edge_index").astype(np.int64, copy=False)
        if index.ndim != 2 or index.shape[0] != 2:
            raise ValueError(f"edge_sets[{edge_set.relation}].edge_index: shape {list(index.shape)}, want [2, edges]")
        if index.size and (
            index.min() < 0
            or index[0].max() >= features[edge_set.source_type].shape[0]
            or index[1].max() >= features[edge_set.target_type].shape[0]
        ):
            raise ValueError(f"edge_sets[{edge_set.relation}].edge_index: a row is out of range")
        edges[edge_type] = index
    return ObservationGraph(features=features, edges=edges, ids=ids, schema_version=int(message.feature_schema_version))


_ELEMENT_TYPES: Mapping[int, Any] = {
    policy_pb2.TENSOR_ELEMENT_TYPE_FLOAT32: np.dtype("<f4"),
    policy_pb2.TENSOR_ELEMENT_TYPE_INT64: np.dtype("<i8"),
    policy_pb2.TENSOR_ELEMENT_TYPE_BOOL: np.dtype("?"),
}


def _tensor(message: policy_pb2.Tensor, where: str) -> np.ndarray:
    try:
        return tensor_from_proto(message)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def tensor_to_proto(array: np.ndarray) -> policy_pb2.Tensor:
    if array.dtype == np.bool_:
        kind = policy_pb2.TENSOR_ELEMENT_TYPE_BOOL
    elif np.issubdtype(array.dtype, np.integer):
        kind = policy_pb2.TENSOR_ELEMENT_TYPE_INT64
    else:
        kind = policy_pb2.TENSOR_ELEMENT_TYPE_FLOAT32
    data = np.ascontiguousarray(array, dtype=_ELEMENT_TYPES[kind]).tobytes()
    return policy_pb2.Tensor(shape=list(array.shape), element_type=kind, data=data)


def tensor_from_proto(message: policy_pb2.Tensor) -> np.ndarray:
    dtype = _ELEMENT_TYPES.get(message.element_type)
    if dtype is None:
        raise ValueError(f"tensor element_type {message.element_type} is not supported")
    shape = tuple(int(d) for d in message.shape)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(message.data) != expected:
        raise ValueError(f"tensor data holds {len(message.data)} bytes, shape {list(shape)} needs {expected}")
    return np.frombuffer(message.data, dtype=dtype).reshape(shape).copy()


# --- helpers ----------------------------------------------------------------------------------


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
