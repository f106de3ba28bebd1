"""Canonical encoding and hash of a blueprint IR.

The same graph hashes the same whatever the order of its nodes, edges and
attribute insertion: nodes are sorted by id, edges by (target, port, source), and
the protobuf is serialized deterministically (map entries sorted by key). The
hash covers `init_seed` because the seed decides the compiled kernel's weights.
"""

from __future__ import annotations

import hashlib

from esper.leyline.v1 import blueprint_pb2

# Versioned so that a change of the encoding can never collide with older hashes.
_ENCODING_TAG = b"esper.leyline.v1.BlueprintIR/canonical-1\n"


def canonical_ir(ir: blueprint_pb2.BlueprintIR) -> blueprint_pb2.BlueprintIR:
    """A copy of `ir` with nodes and edges in canonical order."""
    canonical = blueprint_pb2.BlueprintIR()
    canonical.CopyFrom(ir)
    nodes = sorted(canonical.nodes, key=lambda node: node.node_id)
    edges = sorted(canonical.edges, key=lambda edge: (edge.target_node_id, edge.target_port, edge.source_node_id))
    node_copies = [_copy_node(node) for node in nodes]
    edge_copies = [_copy_edge(edge) for edge in edges]
    del canonical.nodes[:]
    del canonical.edges[:]
    canonical.nodes.extend(node_copies)
    canonical.edges.extend(edge_copies)
    return canonical


def canonical_bytes(ir: blueprint_pb2.BlueprintIR) -> bytes:
    return _ENCODING_TAG + canonical_ir(ir).SerializeToString(deterministic=True)


def ir_sha256(ir: blueprint_pb2.BlueprintIR) -> str:
    """Full hex SHA-256 of the canonical encoding."""
    return hashlib.sha256(canonical_bytes(ir)).hexdigest()


def _copy_node(node: blueprint_pb2.IRNode) -> blueprint_pb2.IRNode:
    copy = blueprint_pb2.IRNode()
    copy.CopyFrom(node)
    return copy


def _copy_edge(edge: blueprint_pb2.IREdge) -> blueprint_pb2.IREdge:
    copy = blueprint_pb2.IREdge()
    copy.CopyFrom(edge)
    return copy
