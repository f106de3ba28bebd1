"""Tamiyo's observation graph as a Leyline `ObservationGraph`, and tensors as `Tensor`, both ways."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from esper.leyline.v1 import policy_pb2
from esper.tamiyo.graph import ObservationGraph
from esper.tamiyo.schema import EDGE_TYPES, FEATURE_DIMS, NODE_TYPES, EdgeType


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
