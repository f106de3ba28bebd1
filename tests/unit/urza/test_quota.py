"""Per-identity quotas on blueprint submission: new blueprints cost, resubmissions do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.errors import ResourceExhausted
from esper.leyline.v1 import urza_pb2
from esper.trust.caller import CALLER
from esper.urza.hub import UrzaHub
from tests.support.urza import FakeClock, make_hub, sample_ir

TOLARIA = "spiffe://esper.local/tolaria"
OPERATOR = "spiffe://esper.local/operator"


@pytest.fixture
def small_quota(tmp_path: Path, clock: FakeClock) -> Iterator[UrzaHub]:
    hub = make_hub(
        f"sqlite:///{tmp_path / 'q.db'}",
        tmp_path / "artifacts",
        clock,
        blueprint_quota=2,
        blueprint_quota_window_seconds=100.0,
    )
    yield hub
    hub.close()


def _submit_as(hub: UrzaHub, identity: str | None, seed: int) -> urza_pb2.CreateBlueprintResponse:
    token = CALLER.set(identity)
    try:
        return hub.create_blueprint(urza_pb2.CreateBlueprintRequest(ir=sample_ir(seed=seed)))
    finally:
        CALLER.reset(token)


def _count(hub: UrzaHub) -> int:
    return len(hub.list_blueprints(urza_pb2.ListBlueprintsRequest(page_size=100)).blueprints)


def test_an_identity_past_its_quota_is_refused_with_a_retry_delay_and_nothing_is_stored(
    small_quota: UrzaHub,
) -> None:
    assert _submit_as(small_quota, TOLARIA, 1).created
    assert _submit_as(small_quota, TOLARIA, 2).created
    with pytest.raises(ResourceExhausted) as refused:
        _submit_as(small_quota, TOLARIA, 3)
    assert refused.value.code == "RESOURCE_EXHAUSTED"
    assert refused.value.retry_after_seconds is not None and 0 < refused.value.retry_after_seconds <= 50
    assert _count(small_quota) == 2


def test_quotas_are_per_identity_and_resubmissions_are_free(small_quota: UrzaHub) -> None:
    _submit_as(small_quota, TOLARIA, 1)
    _submit_as(small_quota, TOLARIA, 2)
    # The same IR again answers with the stored blueprint, whatever the quota.
    again = _submit_as(small_quota, TOLARIA, 1)
    assert not again.created
    assert _submit_as(small_quota, OPERATOR, 3).created


def test_the_bucket_refills_over_the_window(small_quota: UrzaHub, clock: FakeClock) -> None:
    _submit_as(small_quota, TOLARIA, 1)
    _submit_as(small_quota, TOLARIA, 2)
    with pytest.raises(ResourceExhausted):
        _submit_as(small_quota, TOLARIA, 3)
    clock.advance(50.0)  # half the window: one token back
    assert _submit_as(small_quota, TOLARIA, 3).created
    with pytest.raises(ResourceExhausted):
        _submit_as(small_quota, TOLARIA, 4)


def test_calls_without_an_identity_are_not_limited(small_quota: UrzaHub) -> None:
    for seed in range(1, 6):
        assert _submit_as(small_quota, None, seed).created


@pytest.mark.parametrize("field", ["blueprint_quota", "blueprint_quota_window_seconds"])
def test_a_quota_setting_must_be_positive(tmp_path: Path, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make_hub(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "a", **{field: 0})
