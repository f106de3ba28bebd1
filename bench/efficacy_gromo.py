"""The growth peer: gromo's TINY width growth of an MLP, driven as gromo's GrowingContainer tutorial does.

Bench-only (`bench/requirements.txt`); imported only when the gromo method runs. The MLP
starts with Esper's initial host's depth (two hidden layers) and a width of about its
parameter count, on flattened pixels for images. Between epochs, while it is below the
target parameter count and within the first `GROWTH_FRACTION` of the epochs, one growth
step: gather TINY's statistics over the training set (cross-entropy summed, as gromo
averages itself), compute the new neurons of every hidden layer (TINY's settings:
no natural-gradient step on the existing weights, covariance preconditioning,
projected gradient), keep the layer with the best first-order improvement, pick the
scaling of the new neurons by a line search on the training loss, apply it. The same
optimizer (Adam, the run's learning rate), batch size, epochs and data order as the
other methods; the state with the best validation accuracy is the one tested.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from esper.data.batching import batches
from esper.data.bundle import Dataset

GROWTH_FRACTION = 0.6
MIN_NEURONS_PER_STEP = 2
LINE_SEARCH = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
STATISTICS_BATCH = 512


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in batches(x, y, 1024, shuffle=False))
    return correct / max(1, len(y))


def _neuron_cost(model: Any, layer: int) -> int:
    """Parameters one new neuron in hidden layer `layer` adds: its fan-in, bias and fan-out."""
    before, after = model.layers[layer], model.layers[layer + 1]
    return int(before.in_features) + 1 + int(after.out_features)


def _grow(model: Any, data: Dataset, neurons: int) -> dict[str, Any]:
    """One TINY growth step of at most `neurons` neurons in the best hidden layer."""
    model.set_growing_layers(scheduling_method="all")
    model.init_computation()
    for xb, yb in batches(data.x_train, data.y_train, STATISTICS_BATCH, shuffle=False):
        model.zero_grad()
        F.cross_entropy(model(xb), yb, reduction="sum").backward()
        model.update_computation()
    model.compute_optimal_updates(maximum_added_neurons=neurons, compute_delta=False)
    model.reset_computation()
    layer = int(model.select_best_update())
    best_loss, best_scale = math.inf, LINE_SEARCH[0]
    with torch.no_grad():
        for scale in LINE_SEARCH:
            model.set_scaling_factor(scale)
            loss = float(F.cross_entropy(model.extended_forward(data.x_train), data.y_train))
            if loss < best_loss:
                best_loss, best_scale = loss, scale
    model.set_scaling_factor(best_scale)
    model.apply_change()
    model.zero_grad()
    return {"layer": layer, "scale": best_scale, "train_loss": best_loss}


def train_gromo(
    data: Dataset,
    *,
    start_width: int,
    target_params: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    depth: int = 2,
) -> dict[str, Any]:
    """Train and grow; returns test/validation accuracy, parameters, wall time and the growth steps."""
    from gromo.containers.growing_mlp import GrowingMLP

    torch.manual_seed(seed)
    model = GrowingMLP(
        in_features=list(data.input_shape),
        out_features=data.num_classes,
        hidden_size=start_width,
        number_hidden_layers=depth,
        activation=nn.ReLU(),
    )
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    growth_end = max(2, int(GROWTH_FRACTION * epochs))
    steps: list[dict[str, Any]] = []
    best: tuple[float, int, nn.Module] | None = None
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for xb, yb in batches(data.x_train, data.y_train, batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        params = model.number_of_parameters()
        if 1 <= epoch < growth_end and params < target_params:
            cheapest = min(_neuron_cost(model, i) for i in range(depth))
            remaining_steps = growth_end - epoch
            neurons = max(MIN_NEURONS_PER_STEP, math.ceil((target_params - params) / cheapest / remaining_steps))
            step = _grow(model, data, neurons)
            step.update(epoch=epoch, params=model.number_of_parameters())
            steps.append(step)
            optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        val = _accuracy(model, data.x_val, data.y_val)
        if best is None or val > best[0]:
            best = (val, epoch, copy.deepcopy(model))
    wall = time.perf_counter() - started
    assert best is not None
    val, best_epoch, kept = best
    return {
        "test_accuracy": _accuracy(kept, data.x_test, data.y_test),
        "val_accuracy": val,
        "params": int(sum(p.numel() for p in kept.parameters())),
        "wall_seconds": wall,
        "detail": {
            "start_width": start_width,
            "target_params": target_params,
            "saved_epoch": best_epoch,
            "widths": [int(layer.out_features) for layer in kept.layers[:-1]],
            "growth_steps": steps,
        },
    }
