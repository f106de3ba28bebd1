"""The seed lifecycle: stages and the legal transitions between them (docs/lifecycle.md).

The table is docs/lifecycle.md's: the design's, with the CULLED/CANCELLED returns to DORMANT and the
ROLLED_BACK lock: after an emergency rollback Tolaria restores the last good
checkpoint, in which the failed seed may sit in any stage but FOSSILIZED, and
locks it there as ROLLED_BACK for the rest of the run. FOSSILIZED and ROLLED_BACK
are terminal. An illegal transition is an error, never a silent no-op.
"""

from __future__ import annotations

from esper.errors import FailedPrecondition
from esper.leyline.v1 import lifecycle_pb2

Stage = lifecycle_pb2.SeedStage

DORMANT = lifecycle_pb2.SEED_STAGE_DORMANT
GERMINATED = lifecycle_pb2.SEED_STAGE_GERMINATED
LOADING = lifecycle_pb2.SEED_STAGE_LOADING
TRAINING = lifecycle_pb2.SEED_STAGE_TRAINING
GRAFTING = lifecycle_pb2.SEED_STAGE_GRAFTING
STABILIZATION = lifecycle_pb2.SEED_STAGE_STABILIZATION
EVALUATING = lifecycle_pb2.SEED_STAGE_EVALUATING
FINE_TUNING = lifecycle_pb2.SEED_STAGE_FINE_TUNING
FOSSILIZED = lifecycle_pb2.SEED_STAGE_FOSSILIZED
CULLED = lifecycle_pb2.SEED_STAGE_CULLED
CANCELLED = lifecycle_pb2.SEED_STAGE_CANCELLED
ROLLED_BACK = lifecycle_pb2.SEED_STAGE_ROLLED_BACK

ALL_STAGES: frozenset[int] = frozenset(
    value for value in lifecycle_pb2.SeedStage.values() if value != lifecycle_pb2.SEED_STAGE_UNSPECIFIED
)

_ROLLBACK_SOURCES = ALL_STAGES - {FOSSILIZED, ROLLED_BACK}

LEGAL_TRANSITIONS: dict[int, frozenset[int]] = {
    DORMANT: frozenset({GERMINATED}),
    GERMINATED: frozenset({LOADING, CANCELLED}),
    LOADING: frozenset({TRAINING, GRAFTING, CULLED}),
    TRAINING: frozenset({GRAFTING, CULLED, CANCELLED}),
    GRAFTING: frozenset({STABILIZATION}),
    STABILIZATION: frozenset({EVALUATING}),
    EVALUATING: frozenset({FINE_TUNING, FOSSILIZED, CULLED}),
    FINE_TUNING: frozenset({FOSSILIZED, CULLED}),
    FOSSILIZED: frozenset(),
    CULLED: frozenset({DORMANT}),
    CANCELLED: frozenset({DORMANT}),
    ROLLED_BACK: frozenset(),
}
for _source in _ROLLBACK_SOURCES:
    LEGAL_TRANSITIONS[_source] = LEGAL_TRANSITIONS[_source] | {ROLLED_BACK}
del _source

# Stages in which the seed's forward is the identity and it holds no kernel worth keeping.
IDENTITY_STAGES: frozenset[int] = frozenset({DORMANT, GERMINATED, LOADING, CULLED, CANCELLED, ROLLED_BACK})
# Stages in which the seed holds a loaded kernel.
KERNEL_STAGES: frozenset[int] = frozenset({TRAINING, GRAFTING, STABILIZATION, EVALUATING, FINE_TUNING, FOSSILIZED})
# Stages in which the kernel's parameters learn.
TRAINABLE_STAGES: frozenset[int] = frozenset({TRAINING, GRAFTING, FINE_TUNING})
# Stages in which the seed's output is blended into the host's.
BLENDING_STAGES: frozenset[int] = frozenset({GRAFTING, STABILIZATION, EVALUATING, FINE_TUNING, FOSSILIZED})
# Stages that return to DORMANT by themselves at the next epoch boundary.
RETURNING_STAGES: frozenset[int] = frozenset({CULLED, CANCELLED})
# Stages an adaptation is under way in (between germination and its outcome).
ACTIVE_STAGES: frozenset[int] = frozenset(
    {GERMINATED, LOADING, TRAINING, GRAFTING, STABILIZATION, EVALUATING, FINE_TUNING}
)


def stage_name(stage: int) -> str:
    """ "TRAINING" for SEED_STAGE_TRAINING; the number for a value outside the enum."""
    if stage in lifecycle_pb2.SeedStage.values():
        return lifecycle_pb2.SeedStage.Name(stage).removeprefix("SEED_STAGE_")
    return str(stage)


def is_legal(from_stage: int, to_stage: int) -> bool:
    return to_stage in LEGAL_TRANSITIONS.get(from_stage, frozenset())


def check_transition(from_stage: int, to_stage: int) -> None:
    """Raise FailedPrecondition (ILLEGAL_TRANSITION) naming both stages unless the move is legal."""
    if is_legal(from_stage, to_stage):
        return
    allowed = sorted(LEGAL_TRANSITIONS.get(from_stage, frozenset()))
    options = ", ".join(stage_name(stage) for stage in allowed) or "nothing (terminal)"
    raise FailedPrecondition(
        f"illegal transition {stage_name(from_stage)} -> {stage_name(to_stage)}; "
        f"from {stage_name(from_stage)} a seed may go to {options}",
        reason="ILLEGAL_TRANSITION",
        metadata={"from_stage": stage_name(from_stage), "to_stage": stage_name(to_stage)},
    )
