"""Simic's replay store of transitions, behaviour cloning jobs and the policies they produce."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from esper.errors import DataLoss, InvalidArgument, NotFound
from esper.leyline.v1 import simic_pb2, tamiyo_pb2
from esper.simic.config import SimicConfig
from esper.simic.db import SimicDatabase
from esper.simic.service import SimicService
from esper.tamiyo import TamiyoConfig, TamiyoController
from tests.support.tamiyo import FakeKernels, SeedSimulator, kernel, run_epochs
from tests.support.transitions import heuristic_transitions

S = simic_pb2


@pytest.fixture
def simic(tmp_path: Path) -> Iterator[SimicService]:
    service = SimicService.open(SimicConfig(data_dir=str(tmp_path / "simic"), training=_no_gate()))
    yield service
    service.close()


def _no_gate() -> object:
    from esper.simic.config import TrainingConfig

    return TrainingConfig(gate_suite="", min_transitions=4)


def _wait(simic: SimicService, job_id: str, timeout: float = 600.0) -> S.TrainingJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = simic.get_training_job(S.GetTrainingJobRequest(job_id=job_id)).job
        if job.status in (S.TRAINING_JOB_STATUS_SUCCEEDED, S.TRAINING_JOB_STATUS_FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_transitions_are_stored_once_with_their_tensors_in_the_object_store(
    simic: SimicService, tmp_path: Path
) -> None:
    transitions = heuristic_transitions(runs=1)
    recorded = simic.record_transitions(S.RecordTransitionsRequest(transitions=transitions[:5]))
    assert (recorded.accepted_count, recorded.duplicate_count) == (5, 0)
    again = simic.record_transitions(S.RecordTransitionsRequest(transitions=transitions))
    assert (again.accepted_count, again.duplicate_count) == (len(transitions) - 5, 5)
    objects = sorted((tmp_path / "simic" / "objects" / "transitions").iterdir())
    assert len(objects) == len(transitions)
    loaded = {t.transition_id: t for t in simic.experience.load()}
    for original in transitions:
        assert loaded[original.transition_id] == original
    objects[0].write_bytes(b"tampered")
    with pytest.raises(DataLoss):
        simic.experience.load()


def test_a_malformed_transition_is_refused_naming_the_field(simic: SimicService) -> None:
    transition = heuristic_transitions(runs=1)[4]
    del transition.seed_actions[-1]
    with pytest.raises(InvalidArgument) as raised:
        simic.record_transitions(S.RecordTransitionsRequest(transitions=[transition]))
    assert [v.field for v in raised.value.violations] == ["transitions[0].seed_actions"]


def test_behaviour_cloning_makes_a_policy_tamiyo_can_load(simic: SimicService) -> None:
    simic.record_transitions(S.RecordTransitionsRequest(transitions=heuristic_transitions(runs=2)))
    started = simic.train_policy(S.TrainPolicyRequest(max_steps=30, policy_id="bc-test"))
    assert started.status == S.TRAINING_JOB_STATUS_QUEUED
    job = _wait(simic, started.job_id)
    assert job.status == S.TRAINING_JOB_STATUS_SUCCEEDED, job.error_message
    assert (job.policy.policy_id, job.policy.version, job.published) == ("bc-test", 1, False)
    assert "not published" in job.error_message
    assert job.policy.metrics["bc_samples"] > 0
    assert job.policy.feature_schema_version == 1
    listed = simic.list_policies(S.ListPoliciesRequest())
    assert [p.policy_id for p in listed.policies] == ["bc-test"]
    fetched = simic.get_policy(S.GetPolicyRequest(policy_id="bc-test", include_weights=True))
    assert fetched.weights and fetched.policy.sha256 == job.policy.sha256
    assert not simic.get_policy(S.GetPolicyRequest(policy_id="bc-test")).weights

    controller = TamiyoController(
        None, TamiyoConfig(policy_timeout_ms=60_000.0), kernels=FakeKernels([kernel("k1")]), policies=simic
    )
    loaded = controller.load_policy(tamiyo_pb2.LoadPolicyRequest(policy_id="bc-test"))
    assert (loaded.policy_id, loaded.policy_version) == ("bc-test", 1)
    run_epochs(controller, SeedSimulator(), [0.5, 0.6, 0.6, 0.6, 0.6])
    assert controller.get_status(tamiyo_pb2.GetStatusRequest()).policy_fallbacks == 0


def test_without_enough_transitions_the_job_fails_saying_what_to_do(simic: SimicService) -> None:
    job = _wait(simic, simic.train_policy(S.TrainPolicyRequest(max_steps=5)).job_id)
    assert job.status == S.TRAINING_JOB_STATUS_FAILED
    assert "record runs with heuristic-v1 first" in job.error_message


def test_unknown_jobs_and_policies_are_not_found(simic: SimicService) -> None:
    with pytest.raises(NotFound) as raised:
        simic.get_training_job(S.GetTrainingJobRequest(job_id="train-nope"))
    assert raised.value.reason == "TRAINING_JOB_NOT_FOUND"
    with pytest.raises(NotFound) as raised:
        simic.get_policy(S.GetPolicyRequest(policy_id="simic-9"))
    assert raised.value.reason == "POLICY_NOT_FOUND"
    with pytest.raises(InvalidArgument) as bad:
        simic.train_policy(S.TrainPolicyRequest(policy_id="Bad Id"))
    assert [v.field for v in bad.value.violations] == ["policy_id"]


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'simic.db'}"
    database = SimicDatabase.open(url)
    with database.write() as conn:
        for table in ("transitions", "policies", "training_jobs"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("UPDATE schema_meta SET version = 1 WHERE component = 'simic'"))
    database.close()
    upgraded = SimicDatabase.open(url)
    with upgraded.read() as conn:
        assert conn.execute(text("SELECT version FROM schema_meta WHERE component = 'simic'")).scalar_one() == 2
        assert conn.execute(text("SELECT count(*) FROM transitions")).scalar_one() == 0
    upgraded.close()
