"""Kasmina's small domain records: one adaptation's lineage, an isolation violation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esper.leyline.v1 import blueprint_pb2


@dataclass
class Adaptation:
    """What a seed is carrying, from germination to its outcome: the lineage of one adaptation.

    Epochs are training epochs from 0. `pre_metric` is the validation score (the run's
    metric, higher is better) known at germination; `eval_gain` is set once Tolaria has measured it while EVALUATING.
    `ir` is the blueprint IR, needed to rebuild a fossilized seed from a saved model.
    """

    kernel_id: str
    blueprint_id: str = ""
    template_id: str = ""
    grafting_strategy: int = 0
    selected_for_tags: tuple[str, ...] = ()
    germination_command_id: str = ""
    germination_epoch: int = 0
    pre_metric: float = 0.0
    graft_epoch: int | None = None
    fossilization_epoch: int | None = None
    eval_gain: float | None = None
    parameter_count: int = 0
    ir: blueprint_pb2.BlueprintIR | None = None
    # A fossilized width seed whose units were written into the host's layers (esper.kasmina.widening).
    merged: bool = False
    # The germinating command's span context (an opentelemetry SpanContext); not checkpointed.
    trace_parent: Any = None


@dataclass(frozen=True)
class IsolationViolation:
    """One failed run-time isolation check of a TRAINING seed.

    `kind` is "forward" (the output differed from the host activation), "gradient"
    (the gradient reaching the host through the seed differed from the one it
    received) or "parameters" (the kernel shares parameters with the host).
    """

    seed_id: str
    kind: str
    detail: str
    epoch: int
    global_step: int
    violations: int


@dataclass(frozen=True)
class SeedSnapshot:
    """A seed's lifecycle state without its weights: what a checkpoint restores it from."""

    stage: int
    alpha: float = 0.0
    ramp_step: int | None = None
    ramp_loss_average: float | None = None
    steps_in_stage: int = 0
    stage_entry_epoch: int = 0
    embargo_until_epoch: int = 0
    isolation_violations: int = 0
    last_transition_reason: str = ""
    last_command_id: str = ""
    gradient_norm: float = 0.0
    adaptation: Adaptation | None = None
