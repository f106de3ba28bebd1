"""Optimizers for a model whose trainable set changes as seeds come and go.

The host keeps one optimizer for the whole run. Each seed with trainable kernel
parameters gets its own optimizer when it appears and loses it when it is culled,
so seed churn never disturbs the host's optimizer state (and a TRAINING seed's
isolation extends to the optimizer: the host's Adam moments are exactly those of
a run without the seed). When host layers are replaced by wider ones (a width seed
merged into the host), the host optimizer follows them, each new parameter's state
carried over from the one it grew from (zeros for the new rows and columns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import torch
from torch import nn

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class TrainableModel(Protocol):
    """What Tolaria needs to know about a model's trainable parameters."""

    def host_parameters(self) -> Iterable[nn.Parameter]: ...

    def seed_parameter_groups(self) -> Mapping[str, list[nn.Parameter]]:
        """Parameters of each seed that has a kernel, by seed id (frozen ones included)."""
        ...


def _grown_from(model: TrainableModel) -> dict[torch.Tensor, torch.Tensor]:
    """{new host parameter: the one it grew from}, taken from the model (emptied), if it keeps one."""
    growth: dict[torch.Tensor, torch.Tensor] | None = getattr(model, "host_growth", None)
    if not growth:
        return {}
    taken = dict(growth)
    growth.clear()
    return taken


def adam_factory(learning_rate: float, weight_decay: float) -> OptimizerFactory:
    def make(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(params), lr=learning_rate, weight_decay=weight_decay)

    return make


class OptimizerSet:
    """The host optimizer plus one optimizer per seed with parameters."""

    def __init__(self, model: TrainableModel, make_host: OptimizerFactory, make_seed: OptimizerFactory) -> None:
        self._model = model
        self._make_seed = make_seed
        self._make_host = make_host
        self.host = make_host(model.host_parameters())
        self._host_params = tuple(id(p) for p in model.host_parameters())
        self.seeds: dict[str, torch.optim.Optimizer] = {}
        self._seed_params: dict[str, tuple[int, ...]] = {}
        self.sync()

    def sync(self) -> bool:
        """Match the optimizers to the model's host and seeds; True when anything changed."""
        changed = self._sync_host()
        groups = self._model.seed_parameter_groups()
        for seed_id in list(self.seeds):
            identity = tuple(id(p) for p in groups.get(seed_id, ()))
            if seed_id not in groups or identity != self._seed_params[seed_id]:
                del self.seeds[seed_id], self._seed_params[seed_id]
                changed = True
        for seed_id, params in groups.items():
            if seed_id not in self.seeds and params:
                self.seeds[seed_id] = self._make_seed(params)
                self._seed_params[seed_id] = tuple(id(p) for p in params)
                changed = True
        return changed

    def _sync_host(self) -> bool:
        params = list(self._model.host_parameters())
        identity = tuple(id(p) for p in params)
        if identity == self._host_params:
            return False
        grown = _grown_from(self._model)
        old_state = self.host.state
        fresh = self._make_host(params)
        for param in params:
            source = grown.get(param, param)
            if source in old_state:
                fresh.state[param] = {key: _grow(value, source, param) for key, value in old_state[source].items()}
        self.host, self._host_params = fresh, identity
        return True

    def zero_grad(self) -> None:
        self.host.zero_grad(set_to_none=True)
        for optimizer in self.seeds.values():
            optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.host.step()
        for optimizer in self.seeds.values():
            optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "host": self.host.state_dict(),
            "seeds": {seed_id: opt.state_dict() for seed_id, opt in self.seeds.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore after the model's seeds were restored (call sync() first)."""
        self.sync()
        self.host.load_state_dict(state["host"])
        for seed_id, seed_state in state["seeds"].items():
            if seed_id in self.seeds:
                self.seeds[seed_id].load_state_dict(seed_state)


def _grow(value: object, old: torch.Tensor, new: torch.Tensor) -> object:
    """A per-parameter state tensor shaped like `old`, laid into zeros shaped like `new` (leading slices)."""
    if not isinstance(value, torch.Tensor) or value.shape != old.shape or old.shape == new.shape:
        return value.clone() if isinstance(value, torch.Tensor) else value
    out = value.new_zeros(new.shape)
    out[tuple(slice(0, size) for size in old.shape)] = value
    return out
