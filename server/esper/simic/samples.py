"""Transitions as training samples: the graph, the masks, the action taken, batched for the GNN.

A transition becomes a sample only if it can be learned from: its feature schema is
the one this Simic builds, and its action is legal under its own masks (a germination
names a kernel of its graph that fits the seed). Anything else is skipped and counted
by reason, never guessed at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from esper.leyline.v1 import policy_pb2
from esper.tamiyo.acting import GraphTensors, graph_tensors
from esper.tamiyo.graph import FEATURE_SCHEMA_VERSION, FITS, ObservationGraph
from esper.tamiyo.graph_proto import graph_from_proto, tensor_from_proto
from esper.tamiyo.masks import GERMINATE, actions_legal
from esper.tamiyo.transitions import seed_actions_from_proto


@dataclass(frozen=True)
class Sample:
    """One boundary, ready for the network. `kernel_edge` indexes the graph's FITS edges (-1: none)."""

    graph: ObservationGraph
    mask: np.ndarray
    kernel_mask: np.ndarray
    free_slots: int
    seed_actions: np.ndarray
    kernel_edge: int
    log_prob: float
    value: float
    validation_score: float
    parameter_count: int
    epoch: int
    final_epoch: int

    @property
    def germinates(self) -> bool:
        return bool((self.seed_actions == GERMINATE).any())

    @property
    def has_choice(self) -> bool:
        """Some seed had more than one legal action, or a germination was possible."""
        return bool((self.mask.sum(axis=1) > 1).any())

    @property
    def could_germinate(self) -> bool:
        """Some seed was open to germination (the slot budget aside)."""
        return bool(self.mask[:, GERMINATE].any())


def sample_from_transition(transition: policy_pb2.PolicyTransition) -> Sample:
    """The sample a transition holds; ValueError saying why it cannot be learned from."""
    if transition.observation.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise ValueError(f"feature schema {transition.observation.feature_schema_version}")
    graph = graph_from_proto(transition.observation)
    mask = tensor_from_proto(transition.action_mask).astype(np.bool_)
    kernel_mask = tensor_from_proto(transition.kernel_mask).astype(np.bool_).reshape(-1)
    actions = seed_actions_from_proto(transition.seed_actions)
    seeds = graph.count("seed")
    if mask.shape != (seeds, 5) or actions.shape != (seeds,) or kernel_mask.shape != (graph.count("kernel"),):
        raise ValueError("masks or actions do not match the graph")
    why = actions_legal(mask, int(transition.free_slots), actions)
    if why:
        raise ValueError(f"illegal action: {why}")
    edge = -1
    if (actions == GERMINATE).any():
        row = int(np.flatnonzero(actions == GERMINATE)[0])
        if transition.kernel_id not in graph.kernel_ids:
            raise ValueError("germination without a kernel of the graph")
        kernel = graph.kernel_ids.index(transition.kernel_id)
        fits = graph.edges[FITS]
        found = np.flatnonzero((fits[0] == kernel) & (fits[1] == row))
        if not found.size or not kernel_mask[kernel]:
            raise ValueError("germination with a kernel that does not fit or is out of budget")
        edge = int(found[0])
    return Sample(
        graph=graph,
        mask=mask,
        kernel_mask=kernel_mask,
        free_slots=int(transition.free_slots),
        seed_actions=actions,
        kernel_edge=edge,
        log_prob=float(transition.log_prob),
        value=float(transition.value),
        validation_score=float(transition.validation_score),
        parameter_count=int(transition.parameter_count),
        epoch=int(transition.epoch),
        final_epoch=int(transition.final_epoch),
    )


def samples_from_transitions(
    transitions: Sequence[policy_pb2.PolicyTransition],
) -> tuple[list[Sample], Counter[str]]:
    """The learnable samples, and how many transitions were skipped for each reason."""
    samples: list[Sample] = []
    skipped: Counter[str] = Counter()
    for transition in transitions:
        try:
            samples.append(sample_from_transition(transition))
        except ValueError as exc:
            skipped[str(exc).split(":")[0]] += 1
    return samples, skipped


@dataclass
class SampleBatch:
    """Samples batched: the graphs' tensors, each seed's action, each graph's kernel pair (-1: none)."""

    tensors: GraphTensors
    seed_actions: Tensor
    kernel_pairs: Tensor


def batch(samples: Sequence[Sample]) -> SampleBatch:
    tensors = graph_tensors(
        [s.graph for s in samples],
        [s.mask for s in samples],
        [s.kernel_mask for s in samples],
        [s.free_slots for s in samples],
    )
    offsets = np.cumsum([0] + [s.graph.edges[FITS].shape[1] for s in samples[:-1]])
    pairs = [
        int(offset) + s.kernel_edge if s.kernel_edge >= 0 else -1 for s, offset in zip(samples, offsets, strict=True)
    ]
    return SampleBatch(
        tensors=tensors,
        seed_actions=torch.from_numpy(np.concatenate([s.seed_actions for s in samples])),
        kernel_pairs=torch.tensor(pairs, dtype=torch.long),
    )
