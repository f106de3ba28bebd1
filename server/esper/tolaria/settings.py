"""Tolaria's configuration: how the training loop runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TolariaConfig:
    """Training-loop settings; validated where they are loaded (esper.config)."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    seed_learning_rate: float = 1e-2
    seed: int = 0
    checkpoint_every: int = 1
    divergence_factor: float = 3.0
    max_rollbacks: int = 3
    hook_budget_ms: float = 18.0
    # Never worse than static (see esper.config.TolariaConfig for what each does).
    divergence_window: int = 3
    divergence_min_loss: float = 0.1
    graft_rollback: bool = True
    keep_best_state: bool = True
    retrain_discarded_epochs: bool = True
