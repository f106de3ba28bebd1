"""The policy's action distribution over masked decisions, for acting and for training.

One boundary's action has three parts, each a categorical over legal choices only:
  decisions  each seed that is not open to germination picks among its legal
             WAIT / ADVANCE / CULL / FOSSILIZE (a seed with one legal action adds nothing);
  location   "germinate nowhere" or one seed open to germination (at most one
             germination per boundary, as heuristic-v1), only when a concurrency
             slot is free after the decisions (each seed culled or fossilized frees
             one); otherwise nowhere, with certainty;
  kernel     when a seed was chosen, one of the candidate kernels that fit it and
             are in budget.
The log-probability of the action is the sum of the three parts' and its entropy the
sum of theirs. `act` samples (or takes the mode of) one graph's distribution;
`evaluate` scores given actions on a batch of graphs, which is what behaviour
cloning and PPO differentiate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from esper.tamiyo.gnn import Encoded, TamiyoNet
from esper.tamiyo.graph import FITS, GLOBAL, KERNEL, SEED, ObservationGraph
from esper.tamiyo.masks import CULL, FOSSILIZE, GERMINATE, WAIT

# Masked logits: a large finite negative rather than -inf, so p * log p and its gradient stay 0, never NaN.
_NEG = -1e9


class PolicyOutputError(RuntimeError):
    """The network produced something no decision can come from (a NaN, an infinite value)."""


@dataclass
class GraphTensors:
    """A batch of observation graphs with their masks, as the network reads them."""

    x: dict[str, Tensor]
    edge_index: dict[tuple[str, str, str], Tensor]
    batch: dict[str, Tensor]
    num_graphs: int
    mask: Tensor  # [seeds, 5] bool
    kernel_mask: Tensor  # [kernels] bool
    free_slots: Tensor  # [graphs] int64: concurrency slots free before the decisions

    @property
    def fits(self) -> Tensor:
        return self.edge_index[FITS]  # [2, pairs]: kernel rows, seed rows


def graph_tensors(
    graphs: Sequence[ObservationGraph],
    masks: Sequence[np.ndarray],
    kernel_masks: Sequence[np.ndarray],
    free_slots: Sequence[int],
) -> GraphTensors:
    """Batch graphs (torch_geometric's Batch offsets every node index) with their masks."""
    data = Batch.from_data_list([graph.to_hetero_data() for graph in graphs])
    batch = {node_type: data[node_type].batch for node_type in (SEED, "layer", GLOBAL, KERNEL)}
    return GraphTensors(
        x=data.x_dict,
        edge_index=data.edge_index_dict,
        batch=batch,
        num_graphs=len(graphs),
        mask=torch.from_numpy(np.concatenate([np.asarray(m, dtype=np.bool_) for m in masks], axis=0)),
        kernel_mask=torch.from_numpy(
            np.concatenate([np.asarray(k, dtype=np.bool_).reshape(-1) for k in kernel_masks], axis=0)
        ),
        free_slots=torch.tensor(list(free_slots), dtype=torch.long),
    )


def single_graph_tensors(
    graph: ObservationGraph, mask: np.ndarray, kernel_mask: np.ndarray, free_slots: int = 1
) -> GraphTensors:
    """One graph without Batch's bookkeeping (the acting path, where latency counts)."""
    x = {t: torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)) for t, f in graph.features.items()}
    edge_index = {e: torch.from_numpy(np.ascontiguousarray(i, dtype=np.int64)) for e, i in graph.edges.items()}
    batch = {t: torch.zeros(f.shape[0], dtype=torch.long) for t, f in graph.features.items()}
    return GraphTensors(
        x=x,
        edge_index=edge_index,
        batch=batch,
        num_graphs=1,
        mask=torch.from_numpy(np.asarray(mask, dtype=np.bool_)),
        kernel_mask=torch.from_numpy(np.asarray(kernel_mask, dtype=np.bool_).reshape(-1)),
        free_slots=torch.tensor([free_slots], dtype=torch.long),
    )


def encode(net: TamiyoNet, t: GraphTensors) -> Encoded:
    return net(t.x, t.edge_index, t.batch, t.num_graphs)


@dataclass(frozen=True)
class Action:
    """One graph's action: per-seed choices (column indices), the kernel candidate row or -1."""

    seed_actions: np.ndarray
    kernel_row: int
    log_prob: float
    value: float
    entropy: float
    seed_probability: np.ndarray  # probability of each seed's choice (its location part for the chosen seed)
    kernel_probability: float

    @property
    def germinate_row(self) -> int:
        rows = np.flatnonzero(self.seed_actions == GERMINATE)
        return int(rows[0]) if rows.size else -1


@dataclass
class _Parts:
    decision_logp: Tensor  # [seeds, 5] log-probs of each seed's decision (eligible seeds: WAIT = 0)
    eligible: Tensor  # [seeds] bool: open to germination (decided by the location part)
    location_logits: Tensor  # [graphs + eligible]
    location_group: Tensor  # [graphs + eligible]
    location_logp: Tensor
    eligible_rows: Tensor  # seed rows of the eligible entries


def _parts(enc: Encoded, t: GraphTensors) -> _Parts:
    mask = t.mask
    eligible = mask[:, GERMINATE]
    decide = mask.clone()
    decide[:, GERMINATE] = False
    # A seed open to germination waits unless the location part picks it: its WAIT costs nothing here.
    only_wait = torch.zeros_like(decide)
    only_wait[:, WAIT] = True
    decide = torch.where(eligible.unsqueeze(1), only_wait, decide)
    logits = enc.seed_logits.masked_fill(~decide, _NEG)
    decision_logp = torch.log_softmax(logits, dim=1)
    eligible_rows = torch.nonzero(eligible, as_tuple=False).flatten()
    graphs = torch.arange(t.num_graphs)
    location_logits = torch.cat([enc.stay_logit, enc.seed_logits[eligible_rows, GERMINATE]])
    location_group = torch.cat([graphs, t.batch[SEED][eligible_rows]])
    return _Parts(
        decision_logp=decision_logp,
        eligible=eligible,
        location_logits=location_logits,
        location_group=location_group,
        location_logp=group_log_softmax(location_logits, location_group, t.num_graphs),
        eligible_rows=eligible_rows,
    )


def group_log_softmax(logits: Tensor, group: Tensor, groups: int) -> Tensor:
    """log-softmax of `logits` within each group."""
    if logits.numel() == 0:
        return logits
    top = scatter(logits.detach(), group, dim=0, dim_size=groups, reduce="max")
    shifted = logits - top[group]
    total = scatter(shifted.exp(), group, dim=0, dim_size=groups, reduce="sum")
    return shifted - total.log()[group]


def _check(enc: Encoded) -> None:
    for name, tensor in (("seed logits", enc.seed_logits), ("stay logit", enc.stay_logit), ("value", enc.value)):
        if not bool(torch.isfinite(tensor).all()):
            raise PolicyOutputError(f"the network's {name} are not finite")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for a while.

    A decision over a graph of this size gains nothing from more threads, and on a
    machine busy with training their spin-waits made a 7 ms step take 290 ms.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def act(
    net: TamiyoNet,
    graph: ObservationGraph,
    mask: np.ndarray,
    kernel_mask: np.ndarray,
    *,
    free_slots: int = 1,
    sample: bool = False,
    sample_decisions: bool = True,
    generator: torch.Generator | None = None,
) -> Action:
    """One graph's action: sampled, or the most likely choice of each part (deterministic).

    With `sample` but not `sample_decisions`, the seeds' lifecycle decisions are the most
    likely ones and only the germination (where, which kernel) is sampled; the action's
    log-probability and entropy are then those of the germination alone (what PPO trains).
    """
    with one_thread(), torch.no_grad():
        return _act(net, graph, mask, kernel_mask, free_slots, sample, sample_decisions, generator)


def _act(
    net: TamiyoNet,
    graph: ObservationGraph,
    mask: np.ndarray,
    kernel_mask: np.ndarray,
    free_slots: int,
    sample: bool,
    sample_decisions: bool,
    generator: torch.Generator | None,
) -> Action:
    t = single_graph_tensors(graph, mask, kernel_mask, free_slots)
    enc = encode(net, t)
    _check(enc)
    parts = _parts(enc, t)
    seeds = mask.shape[0]
    probs = parts.decision_logp.exp()
    choice = _pick(probs, sample and sample_decisions, generator) if seeds else torch.zeros(0, dtype=torch.long)
    log_prob = parts.decision_logp.gather(1, choice.unsqueeze(1)).sum() if seeds else torch.tensor(0.0)
    entropy = _entropy(parts.decision_logp).sum()
    if sample and not sample_decisions:
        log_prob, entropy = torch.tensor(0.0), torch.tensor(0.0)
    seed_probability = probs.gather(1, choice.unsqueeze(1)).squeeze(1) if seeds else torch.zeros(0)
    location_probs = parts.location_logp.exp()
    where = 0
    if free_slots + int(_ending(choice).sum()) > 0:
        where = int(_pick(location_probs.unsqueeze(0), sample, generator)[0])
        log_prob = log_prob + parts.location_logp[where]
        entropy = entropy + _entropy(parts.location_logp.unsqueeze(0)).sum()
    kernel_row, kernel_probability = -1, 1.0
    seed_actions = choice.clone()
    if where > 0:
        row = int(parts.eligible_rows[where - 1])
        seed_actions[row] = GERMINATE
        seed_probability[row] = location_probs[where]
        fits = t.fits
        pairs = torch.nonzero((fits[1] == row) & t.kernel_mask[fits[0]], as_tuple=False).flatten()
        kernel_rows = fits[0][pairs]
        logits = net.kernel_logits(enc, kernel_rows, fits[1][pairs], torch.zeros_like(pairs))
        if not bool(torch.isfinite(logits).all()):
            raise PolicyOutputError("the network's kernel scores are not finite")
        kernel_logp = torch.log_softmax(logits, dim=0)
        pick = int(_pick(kernel_logp.exp().unsqueeze(0), sample, generator)[0])
        kernel_row = int(kernel_rows[pick])
        kernel_probability = float(kernel_logp[pick].exp())
        log_prob = log_prob + kernel_logp[pick]
        entropy = entropy + _entropy(kernel_logp.unsqueeze(0)).sum()
    return Action(
        seed_actions=seed_actions.numpy().astype(np.int64),
        kernel_row=kernel_row,
        log_prob=float(log_prob),
        value=float(enc.value[0]),
        entropy=float(entropy),
        seed_probability=seed_probability.numpy(),
        kernel_probability=kernel_probability,
    )


def _ending(actions: Tensor) -> Tensor:
    """Seeds whose action ends their adaptation now, freeing a concurrency slot."""
    return (actions == CULL) | (actions == FOSSILIZE)


def _pick(probs: Tensor, sample: bool, generator: torch.Generator | None) -> Tensor:
    """One index per row: sampled, or the most likely (ties to the lowest index)."""
    if sample:
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return probs.argmax(dim=1)


def _entropy(logp: Tensor) -> Tensor:
    """Entropy of each row of log-probabilities (masked entries have probability 0)."""
    return -(logp.exp() * logp).sum(dim=-1)


@dataclass
class Evaluation:
    """Per graph: log-probability of the given action, entropy of the distribution, value, and the
    mean log-probability of the legal options of each part of the action (summed over the parts:
    the cross-entropy to a uniform choice, which label smoothing mixes in)."""

    log_prob: Tensor
    entropy: Tensor
    value: Tensor
    uniform_log_prob: Tensor


def evaluate(
    net: TamiyoNet, t: GraphTensors, seed_actions: Tensor, kernel_pairs: Tensor, *, decisions: bool = True
) -> Evaluation:
    """Score given actions. `seed_actions` [seeds] are column indices; `kernel_pairs` [graphs] the
    index into `t.fits` of each graph's germination (kernel, seed) pair, -1 for none. Without
    `decisions`, only the germination counts (see `act`'s `sample_decisions`)."""
    enc = encode(net, t)
    parts = _parts(enc, t)
    graphs = t.num_graphs
    seed_graph = t.batch[SEED]
    decided = torch.where(parts.eligible, torch.full_like(seed_actions, WAIT), seed_actions)
    taken = parts.decision_logp.gather(1, decided.unsqueeze(1)).squeeze(1)
    log_prob = scatter(taken, seed_graph, dim=0, dim_size=graphs, reduce="sum")
    entropy = scatter(_entropy(parts.decision_logp), seed_graph, dim=0, dim_size=graphs, reduce="sum")
    if not decisions:
        log_prob, entropy = torch.zeros_like(log_prob), torch.zeros_like(entropy)
    legal = parts.decision_logp > _NEG / 2
    options = legal.sum(dim=1)
    mean_legal = torch.where(legal, parts.decision_logp, torch.zeros_like(parts.decision_logp)).sum(dim=1) / options
    uniform = scatter(
        torch.where(options > 1, mean_legal, torch.zeros_like(mean_legal)),
        seed_graph,
        dim=0,
        dim_size=graphs,
        reduce="sum",
    )
    germinated = seed_actions == GERMINATE
    has_germination = scatter(germinated.long(), seed_graph, dim=0, dim_size=graphs, reduce="sum") > 0
    freed = scatter(_ending(seed_actions).long(), seed_graph, dim=0, dim_size=graphs, reduce="sum")
    location_open = (t.free_slots + freed > 0)[parts.location_group]
    chosen = torch.cat([~has_germination, germinated[parts.eligible_rows]]) & location_open
    zeros = torch.zeros_like(parts.location_logp)
    log_prob = log_prob + scatter(
        torch.where(chosen, parts.location_logp, zeros), parts.location_group, dim=0, dim_size=graphs, reduce="sum"
    )
    location_entropy = torch.where(location_open, -(parts.location_logp.exp() * parts.location_logp), zeros)
    entropy = entropy + scatter(location_entropy, parts.location_group, dim=0, dim_size=graphs, reduce="sum")
    location_mean = scatter(parts.location_logp, parts.location_group, dim=0, dim_size=graphs, reduce="mean")
    location_options = scatter(
        torch.ones_like(parts.location_logp), parts.location_group, dim=0, dim_size=graphs, reduce="sum"
    )
    uniform = uniform + torch.where(
        (t.free_slots + freed > 0) & (location_options > 1), location_mean, torch.zeros_like(location_mean)
    )
    fits = t.fits
    relevant = torch.nonzero(germinated[fits[1]] & t.kernel_mask[fits[0]], as_tuple=False).flatten()
    if relevant.numel():
        pair_graph = seed_graph[fits[1][relevant]]
        logits = net.kernel_logits(enc, fits[0][relevant], fits[1][relevant], pair_graph)
        kernel_logp = group_log_softmax(logits, pair_graph, graphs)
        picked = torch.zeros(relevant.numel(), dtype=torch.bool)
        lookup = {int(edge): i for i, edge in enumerate(relevant.tolist())}
        for edge in kernel_pairs.tolist():
            if edge >= 0 and edge in lookup:
                picked[lookup[edge]] = True
        log_prob = log_prob + scatter(
            torch.where(picked, kernel_logp, torch.zeros_like(kernel_logp)),
            pair_graph,
            dim=0,
            dim_size=graphs,
            reduce="sum",
        )
        entropy = entropy + scatter(
            -(kernel_logp.exp() * kernel_logp), pair_graph, dim=0, dim_size=graphs, reduce="sum"
        )
        uniform = uniform + scatter(kernel_logp, pair_graph, dim=0, dim_size=graphs, reduce="mean")
    return Evaluation(log_prob=log_prob, entropy=entropy, value=enc.value, uniform_log_prob=uniform)
