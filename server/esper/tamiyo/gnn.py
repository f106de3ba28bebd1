"""Tamiyo's learned policy network: a heterogeneous GNN encoder with decision, kernel and value heads.

    global features -> g                                   [graphs, H]
    seed / layer / kernel features ++ g -> h               [nodes, H]
    `layers` rounds of HeteroConv over the graph's relations (SAGEConv, or GATv2Conv),
    each added to h (a residual); every relation runs, with or without edges
    seed head    [h_seed ++ g]          -> 5 logits: WAIT, GERMINATE, ADVANCE, CULL, FOSSILIZE
    stay head    [g ++ mean h_seed]     -> the logit of germinating nowhere this boundary
    kernel head  [h_seed ++ h_kernel ++ g] per (candidate, seed) pair -> its score
    value head   [g ++ mean h_seed]     -> the value of the observation

Imports torch_geometric, which takes seconds: only learned policies and Simic load it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, HeteroConv, SAGEConv
from torch_geometric.utils import scatter

from esper.tamiyo.graph import EDGE_TYPES, FEATURE_DIMS, FEATURE_SCHEMA_VERSION, GLOBAL, KERNEL, LAYER, SEED
from esper.tamiyo.masks import ACTION_COUNT

CONVS = ("sage", "gatv2")


@dataclass(frozen=True)
class Architecture:
    """The network's shape; recorded in every policy card."""

    hidden: int = 32
    layers: int = 2
    conv: str = "sage"
    heads: int = 2
    feature_schema_version: int = FEATURE_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not 4 <= self.hidden <= 512:
            raise ValueError(f"hidden must be in [4, 512], got {self.hidden}")
        if not 1 <= self.layers <= 6:
            raise ValueError(f"layers must be in [1, 6], got {self.layers}")
        if self.conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {self.conv!r}")
        if not 1 <= self.heads <= 8:
            raise ValueError(f"heads must be in [1, 8], got {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": "tamiyo-hetero-gnn", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        known = {"hidden", "layers", "conv", "heads", "feature_schema_version"}
        unknown = sorted(set(data) - known - {"name"})
        if unknown:
            raise ValueError(f"architecture: unknown keys {unknown}")
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class Encoded:
    """The network's reading of a batch of graphs."""

    seed: Tensor  # [seeds, H]
    kernel: Tensor  # [kernels, H]
    graph: Tensor  # [graphs, H]
    seed_logits: Tensor  # [seeds, 5]
    stay_logit: Tensor  # [graphs]
    value: Tensor  # [graphs]


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class TamiyoNet(nn.Module):
    """See the module docstring. Inputs are the dicts of a (batched) HeteroData."""

    def __init__(self, architecture: Architecture | None = None) -> None:
        super().__init__()
        self.architecture = arch = architecture or Architecture()
        hidden = arch.hidden
        self.global_encoder = nn.Sequential(nn.Linear(FEATURE_DIMS[GLOBAL], hidden), nn.ReLU())
        self.encoders = nn.ModuleDict(
            {node_type: nn.Linear(FEATURE_DIMS[node_type] + hidden, hidden) for node_type in (SEED, LAYER, KERNEL)}
        )
        self.convs = nn.ModuleList(
            HeteroConv({edge_type: self._conv(arch) for edge_type in EDGE_TYPES}, aggr="sum")
            for _ in range(arch.layers)
        )
        self.seed_head = _mlp(2 * hidden, hidden, ACTION_COUNT)
        self.stay_head = _mlp(2 * hidden, hidden, 1)
        self.kernel_head = _mlp(3 * hidden, hidden, 1)
        self.value_head = _mlp(2 * hidden, hidden, 1)

    @staticmethod
    def _conv(arch: Architecture) -> nn.Module:
        if arch.conv == "gatv2":
            return GATv2Conv(
                (arch.hidden, arch.hidden), arch.hidden, heads=arch.heads, concat=False, add_self_loops=False
            )
        return SAGEConv((arch.hidden, arch.hidden), arch.hidden)

    def forward(
        self,
        x: dict[str, Tensor],
        edge_index: dict[tuple[str, str, str], Tensor],
        batch: dict[str, Tensor],
        num_graphs: int,
    ) -> Encoded:
        g = self.global_encoder(x[GLOBAL])  # [graphs, H]
        h = {
            node_type: torch.relu(self.encoders[node_type](torch.cat([x[node_type], g[batch[node_type]]], dim=1)))
            for node_type in (SEED, LAYER, KERNEL)
        }
        # Every relation runs even without edges (its root term then still applies), so a graph's
        # reading does not depend on which relations the other graphs of a batch have.
        edges = {edge_type: edge_index[edge_type] for edge_type in EDGE_TYPES if edge_type in edge_index}
        for conv in self.convs:
            out = conv(h, edges)
            h = {
                node_type: h[node_type] + torch.relu(out[node_type]) if node_type in out else h[node_type]
                for node_type in h
            }
        pooled = scatter(h[SEED], batch[SEED], dim=0, dim_size=num_graphs, reduce="mean")  # [graphs, H]
        summary = torch.cat([g, pooled], dim=1)
        return Encoded(
            seed=h[SEED],
            kernel=h[KERNEL],
            graph=g,
            seed_logits=self.seed_head(torch.cat([h[SEED], g[batch[SEED]]], dim=1)),
            stay_logit=self.stay_head(summary).squeeze(1),
            value=self.value_head(summary).squeeze(1),
        )

    def kernel_logits(self, encoded: Encoded, kernel_rows: Tensor, seed_rows: Tensor, graph_rows: Tensor) -> Tensor:
        """Scores [pairs] of the (kernel, seed) pairs given by row indices."""
        pairs = torch.cat([encoded.seed[seed_rows], encoded.kernel[kernel_rows], encoded.graph[graph_rows]], dim=1)
        return self.kernel_head(pairs).squeeze(1)
