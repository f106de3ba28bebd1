"""Behaviour cloning: a TamiyoNet that imitates heuristic-v1's recorded decisions.

The loss is the negative log-likelihood of the heuristic's whole action (every seed's
decision, where it germinated, which kernel) under the masked distribution the
policy acts with, so the network learns the heuristic inside the same masks it will
be held to; label smoothing (`smoothing`) mixes in a uniform choice among the legal
options, so the clone is never certain and PPO can still explore from it. A fifth of
the samples (by boundary) is held out to measure agreement: the share of boundaries
where the network's most likely action is the heuristic's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from esper.simic.samples import Sample, batch
from esper.tamiyo.acting import act, evaluate
from esper.tamiyo.gnn import Architecture, TamiyoNet

logger = logging.getLogger(__name__)

Progress = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class CloningResult:
    net: TamiyoNet
    metrics: dict[str, float]


def agreement(net: TamiyoNet, samples: Sequence[Sample]) -> float:
    """Share of samples whose most likely action is exactly the recorded one."""
    if not samples:
        return 0.0
    same = 0
    for s in samples:
        action = act(net, s.graph, s.mask, s.kernel_mask, free_slots=s.free_slots)
        kernel_row = int(s.graph.edges["kernel", "fits", "seed"][0, s.kernel_edge]) if s.kernel_edge >= 0 else -1
        same += int(np.array_equal(action.seed_actions, s.seed_actions) and action.kernel_row == kernel_row)
    return same / len(samples)


def clone(
    samples: Sequence[Sample],
    *,
    architecture: Architecture,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
    net: TamiyoNet | None = None,
    progress: Progress | None = None,
    smoothing: float = 0.1,
) -> CloningResult:
    """Train (a copy of `net`, or a fresh network) to imitate `samples`."""
    if not samples:
        raise ValueError("no samples to learn from")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order = list(range(len(samples)))
    rng.shuffle(order)
    held = max(1, len(order) // 5) if len(order) >= 10 else 0
    held_out = [samples[i] for i in order[:held]]
    train = [samples[i] for i in order[held:]]
    model = TamiyoNet(architecture)
    if net is not None:
        model.load_state_dict(net.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_value = 0.0
    model.train()
    for step in range(1, steps + 1):
        chosen = [train[rng.randrange(len(train))] for _ in range(min(batch_size, len(train)))]
        data = batch(chosen)
        scored = evaluate(model, data.tensors, data.seed_actions, data.kernel_pairs)
        # Label smoothing keeps the clone from certainty (every legal option keeps about
        # smoothing / options of probability), so PPO's exploration starts from somewhere.
        loss = -((1 - smoothing) * scored.log_prob + smoothing * scored.uniform_log_prob).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = float(loss.detach())
        if progress is not None and (step % 50 == 0 or step == steps):
            progress(step, {"loss": loss_value})
    model.eval()
    metrics = {
        "bc_loss": loss_value,
        "bc_samples": float(len(samples)),
        "bc_train_agreement": agreement(model, train[:500]),
        "bc_held_out_agreement": agreement(model, held_out) if held_out else 0.0,
    }
    logger.info("behaviour cloning: %s", ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return CloningResult(net=model, metrics=metrics)
