"""Tamiyo's observation as a typed graph (docs/policy.md).

Node types, one feature row each (the column names are `*_FEATURES`, their
version `FEATURE_SCHEMA_VERSION`; a policy reads only graphs of the version it
was trained on):
  seed    every Kasmina seed, in layout order: stage, alpha, health signals,
          epochs in stage, measured gain, parameters, embargo, where it sits;
  layer   every weight layer of the host (kind, widths, parameters, depth);
  global  one row: epoch fraction, validation score and loss trends, parameters against
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.features import global_features, kernel_features, layer_features, layers, seed_features
from esper.tamiyo.observation import Observation
from esper.tamiyo.schema import (
    CHILD_OF,
    CONTAINS,
    EDGE_TYPES,
    FEATURE_DIMS,
    FEATURE_SCHEMA_VERSION,
    FITS,
    FITTED_BY,
    GLOBAL,
    KERNEL,
    LAYER,
    LAYER_BACKWARD,
    LAYER_FORWARD,
    MONITORED_BY,
    MONITORS,
    NODE_TYPES,
    SEED,
    SEQUENTIAL,
    EdgeType,
    KernelCandidate,
)
from esper.tamiyo.state import RunState

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

__all__ = [
    "CHILD_OF",
    "CONTAINS",
    "EDGE_TYPES",
    "FEATURE_DIMS",
    "FEATURE_SCHEMA_VERSION",
    "FITS",
    "FITTED_BY",
    "GLOBAL",
    "KERNEL",
    "LAYER",
    "LAYER_BACKWARD",
    "LAYER_FORWARD",
    "MONITORED_BY",
    "MONITORS",
    "NODE_TYPES",
    "SEED",
    "SEQUENTIAL",
    "EdgeType",
    "KernelCandidate",
    "ObservationGraph",
    "build_graph",
]


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
    previous_score: float | None = None,
    parents: Mapping[str, str] | None = None,
) -> ObservationGraph:
    """The observation graph of one boundary.

    `state` is the run's state after the boundary's bookkeeping (score tracked,
    finished adaptations forgotten), before any decision. `previous_score` is the
    last boundary's validation score (None at the first). `parents` maps a nested
    seed's id to its parent's (CONTAINS / CHILD_OF).
    """
    parents = {**observation.layout.parents, **(parents or {})}
    host_layers, monitors = layers(observation)
    seed_rows = observation.rows
    seed_x = seed_features(observation, state, parents)
    layer_x = layer_features(host_layers, monitors)
    global_x = global_features(observation, state, config, previous_score)
    kernel_x = kernel_features(candidates, state, observation.model_parameters)
    edges = {
        SEQUENTIAL: _sequential_edges(observation),
        LAYER_FORWARD: _chain(len(host_layers)),
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
            LAYER: host_layers.paths,
            GLOBAL: (),
            KERNEL: tuple(candidate.kernel.kernel_id for candidate in candidates),
        },
    )


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
