"""The seed lifecycle: the table of docs/lifecycle.md, enforced by the seed and by the operator."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper.errors import EsperError, FailedPrecondition, InvalidArgument
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.leyline.v1 import lifecycle_pb2
from tests.support.kasmina import command, mlp_setup

STAGES = sorted(lc.ALL_STAGES)

# The legal transitions of docs/lifecycle.md, written out independently of the module under test.
APPENDIX_B = {
    ("DORMANT", "GERMINATED"),
    ("GERMINATED", "LOADING"),
    ("GERMINATED", "CANCELLED"),
    ("LOADING", "TRAINING"),
    ("LOADING", "GRAFTING"),
    ("LOADING", "CULLED"),
    ("TRAINING", "GRAFTING"),
    ("TRAINING", "CULLED"),
    ("TRAINING", "CANCELLED"),
    ("GRAFTING", "STABILIZATION"),
    ("STABILIZATION", "EVALUATING"),
    ("EVALUATING", "FINE_TUNING"),
    ("EVALUATING", "FOSSILIZED"),
    ("EVALUATING", "CULLED"),
    ("FINE_TUNING", "FOSSILIZED"),
    ("FINE_TUNING", "CULLED"),
    ("CULLED", "DORMANT"),
    ("CANCELLED", "DORMANT"),
}
ROLLBACK_SOURCES = {lc.stage_name(stage) for stage in STAGES} - {"FOSSILIZED", "ROLLED_BACK"}


def _expected_legal(from_stage: int, to_stage: int) -> bool:
    pair = (lc.stage_name(from_stage), lc.stage_name(to_stage))
    return pair in APPENDIX_B or (pair[1] == "ROLLED_BACK" and pair[0] in ROLLBACK_SOURCES)


def test_the_table_is_appendix_b_plus_the_rollback_lock() -> None:
    for from_stage in STAGES:
        for to_stage in STAGES:
            assert lc.is_legal(from_stage, to_stage) == _expected_legal(from_stage, to_stage), (
                lc.stage_name(from_stage),
                lc.stage_name(to_stage),
            )
    assert lc.LEGAL_TRANSITIONS[lc.FOSSILIZED] == frozenset()
    assert lc.LEGAL_TRANSITIONS[lc.ROLLED_BACK] == frozenset()


@given(st.sampled_from(STAGES), st.sampled_from(STAGES))
def test_check_transition_raises_exactly_for_illegal_moves_naming_both_stages(from_stage: int, to_stage: int) -> None:
    if _expected_legal(from_stage, to_stage):
        lc.check_transition(from_stage, to_stage)
        return
    with pytest.raises(FailedPrecondition) as caught:
        lc.check_transition(from_stage, to_stage)
    assert caught.value.reason == "ILLEGAL_TRANSITION"
    assert lc.stage_name(from_stage) in caught.value.message
    assert lc.stage_name(to_stage) in caught.value.message


def test_unspecified_stage_is_never_a_legal_target() -> None:
    with pytest.raises(FailedPrecondition):
        lc.check_transition(lc.DORMANT, lifecycle_pb2.SEED_STAGE_UNSPECIFIED)


# Random command sequences against the operator.

_COMMANDS = st.one_of(
    st.tuples(
        st.just(lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION),
        st.just(0),
        st.sampled_from(["k-mlp", "k-fixed", "k-bad"]),
    ),
    st.tuples(st.just(lifecycle_pb2.COMMAND_TYPE_ADVANCE), st.sampled_from(STAGES), st.just("")),
    st.tuples(
        st.sampled_from(
            [
                lifecycle_pb2.COMMAND_TYPE_CANCEL_GERMINATION,
                lifecycle_pb2.COMMAND_TYPE_FOSSILIZE,
                lifecycle_pb2.COMMAND_TYPE_CULL,
                lifecycle_pb2.COMMAND_TYPE_EMERGENCY_ROLLBACK,
            ]
        ),
        st.just(0),
        st.just(""),
    ),
    st.tuples(st.just(-1), st.just(0), st.just("")),  # an epoch boundary
)


def _seed_view(seed: object) -> tuple[object, ...]:
    return (
        seed.stage,  # type: ignore[attr-defined]
        seed.kernel is not None,  # type: ignore[attr-defined]
        seed.version,  # type: ignore[attr-defined]
        seed.alpha,  # type: ignore[attr-defined]
        seed.embargo_until_epoch,  # type: ignore[attr-defined]
        seed.adaptation is not None,  # type: ignore[attr-defined]
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_COMMANDS, min_size=1, max_size=14))
def test_random_command_sequences_stay_inside_the_table(steps: list[tuple[int, int, str]]) -> None:
    from esper.errors import NotFound
    from tests.support.kasmina import features_source

    source = features_source()
    source.errors["k-bad"] = NotFound("no such kernel", reason="KERNEL_NOT_FOUND")
    model, operator, _, _ = mlp_setup(KasminaConfig(target_module_types=("ReLU",), embargo_epochs=1), source)
    seed = model.seed("1")
    epoch = 0
    for index, (kind, target, kernel_id) in enumerate(steps):
        if kind == -1:
            operator.on_epoch_end(epoch)
            epoch += 1
        else:
            before = _seed_view(seed)
            request = command(kind, "1", command_id=f"c{index}", kernel_id=kernel_id, target_stage=target)
            try:
                operator.apply_command(request)
            except (FailedPrecondition, InvalidArgument) as exc:
                assert _seed_view(seed) == before, exc
                assert operator.drain_transitions() == []
            except EsperError as exc:  # pragma: no cover - any other error is a bug
                raise AssertionError(f"unexpected {exc!r}") from exc
        for transition in operator.drain_transitions():
            assert lc.is_legal(transition.from_stage, transition.to_stage), transition
        assert seed.stage in lc.ALL_STAGES
        assert (seed.kernel is not None) == (seed.stage in lc.KERNEL_STAGES)
        assert seed.hooked == (seed.stage in lc.KERNEL_STAGES)
