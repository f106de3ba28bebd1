"""Alpha ramps: how a grafting seed's blend coefficient goes from 0 to 1 over training steps."""

from __future__ import annotations

import math

from esper import checks
from esper.leyline.v1 import lifecycle_pb2

LINEAR_RAMP = lifecycle_pb2.GRAFTING_STRATEGY_LINEAR_RAMP
COSINE_RAMP = lifecycle_pb2.GRAFTING_STRATEGY_COSINE_RAMP
DRIFT_CONTROLLED = lifecycle_pb2.GRAFTING_STRATEGY_DRIFT_CONTROLLED
STRATEGIES: frozenset[int] = frozenset({LINEAR_RAMP, COSINE_RAMP, DRIFT_CONTROLLED})


def strategy_from_name(name: str) -> int:
    """GRAFTING_STRATEGY_<name> as its enum value ("LINEAR_RAMP" -> GRAFTING_STRATEGY_LINEAR_RAMP)."""
    return lifecycle_pb2.GraftingStrategy.Value(f"GRAFTING_STRATEGY_{name}")


class AlphaRamp:
    """alpha(step) for one graft: 0 at step 0, 1 from `steps` on.

    LINEAR_RAMP: step / steps. COSINE_RAMP: (1 - cos(pi * step / steps)) / 2.
    DRIFT_CONTROLLED: linear, but a step is not counted while the smoothed training
    loss rises (exponential moving average with weight `smoothing` on the past), so
    alpha holds until the host has absorbed the change; without a loss it acts linear.
    """

    def __init__(self, strategy: int, steps: int, *, smoothing: float = 0.9, step: int = 0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown grafting strategy {strategy}")
        checks.positive("ramp_steps", steps)
        self.strategy = strategy
        self.steps = steps
        self.smoothing = smoothing
        self.step = min(step, steps)
        self.loss_average: float | None = None

    @property
    def alpha(self) -> float:
        fraction = self.step / self.steps
        if self.strategy == COSINE_RAMP:
            return (1.0 - math.cos(math.pi * fraction)) / 2.0
        return fraction

    @property
    def done(self) -> bool:
        return self.step >= self.steps

    @property
    def needs_loss(self) -> bool:
        return self.strategy == DRIFT_CONTROLLED and not self.done

    def advance(self, loss: float | None = None) -> float:
        """Count one training step (unless drift holds it) and return the new alpha."""
        if self.done:
            return self.alpha
        if self.strategy == DRIFT_CONTROLLED and loss is not None and self._loss_rises(loss):
            return self.alpha
        self.step += 1
        return self.alpha

    def _loss_rises(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return True
        previous = self.loss_average
        if previous is None:
            self.loss_average = loss
            return False
        current = self.smoothing * previous + (1.0 - self.smoothing) * loss
        self.loss_average = current
        return current > previous
