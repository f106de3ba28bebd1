"""Policy-training jobs: train, gate, store, publish, one job at a time on a background thread.

A job (TrainPolicy) is recorded QUEUED, then RUNNING, then SUCCEEDED with its policy or
FAILED with why. Behaviour cloning learns from heuristic-v1's recorded decisions in the
replay store (including the boundaries where a learned policy fell back to it); PPO
plays episodes (simic.ppo). Every trained policy is stored with its card; it is
published (a PolicyUpdate on Oona, which Tamiyo follows) only when it passes the
validation gate against the current policy (the newest published one, else
heuristic-v1). With no gate suite configured nothing is ever published. A job found
RUNNING when Simic starts was cut short by a restart and is marked FAILED.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2
from sqlalchemy import select, update

from esper.errors import NotFound
from esper.leyline.v1 import control_pb2, simic_pb2
from esper.simic.config import SimicConfig
from esper.simic.db import SimicDatabase, training_jobs
from esper.simic.experience import TransitionStore
from esper.simic.policy_store import PolicyStore
from esper.tamiyo.artifact import PolicyArtifact, write_policy

logger = logging.getLogger(__name__)

Publisher = Callable[[control_pb2.PolicyUpdate], None]
HEURISTIC = "heuristic-v1"
# The gate suite that skips the gate; a policy that was not gated is never published.
NO_GATE = "none"
_S = simic_pb2


class JobFailed(Exception):
    """A job cannot produce a policy; the message says why."""


class PolicyTrainer:
    """Runs TrainPolicy jobs for a SimicService."""

    def __init__(
        self,
        database: SimicDatabase,
        experience: TransitionStore,
        policies: PolicyStore,
        config: SimicConfig,
        *,
        publish: Publisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._experience = experience
        self._policies = policies
        self._config = config
        self._publish = publish
        self._clock = clock
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._fail_interrupted()
        self._thread = threading.Thread(target=self._work, name="simic-training", daemon=True)
        self._thread.start()

    def submit(self, request: simic_pb2.TrainPolicyRequest) -> simic_pb2.TrainingJob:
        now = self._now()
        job = simic_pb2.TrainingJob(
            job_id=f"train-{uuid.uuid4().hex[:12]}",
            status=_S.TRAINING_JOB_STATUS_QUEUED,
            algorithm=request.algorithm or _S.TRAINING_ALGORITHM_BEHAVIOUR_CLONING,
        )
        job.create_time.CopyFrom(now)
        job.update_time.CopyFrom(now)
        with self._database.write() as conn:
            conn.execute(
                training_jobs.insert().values(
                    job_id=job.job_id,
                    job=job.SerializeToString(),
                    request=request.SerializeToString(),
                    log="",
                    create_us=_us(now),
                )
            )
        self._queue.put(job.job_id)
        return job

    def get(self, job_id: str) -> simic_pb2.TrainingJob:
        with self._database.read() as conn:
            row = conn.execute(select(training_jobs.c.job).where(training_jobs.c.job_id == job_id)).first()
        if row is None:
            raise NotFound(f"training job {job_id!r} not found", reason="TRAINING_JOB_NOT_FOUND")
        return simic_pb2.TrainingJob.FromString(row.job)

    def close(self, timeout: float = 60.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    # --- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:
                logger.exception("training job %s crashed", job_id)

    def _run(self, job_id: str) -> None:
        with self._database.read() as conn:
            row = conn.execute(select(training_jobs.c.request).where(training_jobs.c.job_id == job_id)).first()
        request = simic_pb2.TrainPolicyRequest.FromString(row.request) if row is not None else None
        if request is None:
            return
        self._update(job_id, status=_S.TRAINING_JOB_STATUS_RUNNING)
        try:
            policy, published, note = self._train(request)
        except JobFailed as exc:
            logger.warning("training job %s failed: %s", job_id, exc)
            self._update(job_id, status=_S.TRAINING_JOB_STATUS_FAILED, error=str(exc))
            return
        except Exception as exc:
            logger.exception("training job %s failed", job_id)
            self._update(job_id, status=_S.TRAINING_JOB_STATUS_FAILED, error=f"{type(exc).__name__}: {exc}"[:1000])
            return
        self._update(job_id, status=_S.TRAINING_JOB_STATUS_SUCCEEDED, policy=policy, published=published, error=note)

    def _train(self, request: simic_pb2.TrainPolicyRequest) -> tuple[control_pb2.PolicyUpdate, bool, str]:
        from esper.simic.recipes import train_policy

        version = self._policies.next_version()
        policy_id = request.policy_id or f"simic-{version}"
        outcome = train_policy(
            request,
            policy_id=policy_id,
            version=version,
            experience=self._experience,
            base=self._base_artifact(request.base_policy_id),
            config=self._config,
        )
        artifact = outcome.artifact
        tolerance = request.gate_tolerance if request.HasField("gate_tolerance") else None
        gate_note, passed = self._gate(artifact, request.gate_suite, request.gate_seeds, tolerance)
        artifact.card["validation"] = {**artifact.card.get("validation", {}), **outcome.gate_card, "gate": gate_note}
        update_message = policy_update(artifact, outcome.metrics, transition_count=outcome.transitions, now=self._now())
        self._policies.add(update_message, artifact.weights, published=False, create_us=_us(self._now()))
        if passed:
            self._policies.mark_published(policy_id)
            if self._publish is not None:
                self._publish(update_message)
        return update_message, passed, gate_note

    def _base_artifact(self, base_policy_id: str) -> PolicyArtifact | None:
        if not base_policy_id or base_policy_id == HEURISTIC:
            return None
        from esper.tamiyo.policies import find_artifact

        try:
            found, _ = self._policies.get(base_policy_id)
        except NotFound:
            artifact = find_artifact(base_policy_id)
            if artifact is None:
                raise JobFailed(f"base policy {base_policy_id!r} is not known to Simic nor shipped") from None
            return artifact
        from esper.tamiyo.policies import artifact_from_update

        return artifact_from_update(found, self._policies.weights(base_policy_id))

    def _gate(
        self, artifact: PolicyArtifact, gate_suite: str, gate_seeds: int, tolerance: float | None
    ) -> tuple[str, bool]:
        """(what the gate found, whether the policy may be published); `tolerance` None: the configured one."""
        training = self._config.training
        suite_name = gate_suite or training.gate_suite
        if not suite_name or suite_name == NO_GATE:
            return "no validation gate: stored, not published", False
        from esper.simic.curriculum import suite
        from esper.simic.episodes import EpisodeWorkers
        from esper.simic.gate import validation_gate
        from esper.simic.reward import RewardConfig
        from esper.simic.twins import StaticTwins

        data = Path(self._config.data_dir)
        current = self._policies.latest_published()
        with (
            tempfile.TemporaryDirectory(prefix="simic-gate-") as scratch,
            EpisodeWorkers(training.workers, timeout_seconds=training.episode_timeout_seconds) as workers,
        ):
            candidate_path = str(write_policy(Path(scratch) / "candidate", artifact))
            current_policy = HEURISTIC
            if current is not None:
                from esper.tamiyo.policies import artifact_from_update

                current_artifact = artifact_from_update(current, self._policies.weights(current.policy_id))
                current_policy = str(write_policy(Path(scratch) / "current", current_artifact))
            result = validation_gate(
                candidate_path,
                current_policy,
                suite(suite_name),
                list(range(gate_seeds or training.gate_seeds)),
                workers=workers,
                twins=StaticTwins(data / "static-twins", assets_dir=training.assets_dir, tasks_dir=str(data)),
                reward=RewardConfig(),
                tolerance=training.gate_tolerance if tolerance is None else tolerance,
                assets_dir=training.assets_dir,
                tasks_dir=str(data),
                labels=(artifact.policy_id, current.policy_id if current is not None else HEURISTIC),
            )
        note = result.describe()
        logger.info("%s", note)
        return note, result.passed

    def _update(
        self,
        job_id: str,
        *,
        status: int,
        policy: control_pb2.PolicyUpdate | None = None,
        published: bool = False,
        error: str = "",
    ) -> None:
        job = self.get(job_id)
        job.status = status  # type: ignore[assignment]
        job.update_time.CopyFrom(self._now())
        if policy is not None:
            job.policy.CopyFrom(policy)
        job.published = published
        job.error_message = error
        with self._database.write() as conn:
            conn.execute(
                update(training_jobs).where(training_jobs.c.job_id == job_id).values(job=job.SerializeToString())
            )

    def _fail_interrupted(self) -> None:
        with self._database.read() as conn:
            rows = conn.execute(select(training_jobs.c.job_id, training_jobs.c.job)).all()
        for row in rows:
            job = simic_pb2.TrainingJob.FromString(row.job)
            if job.status in (_S.TRAINING_JOB_STATUS_QUEUED, _S.TRAINING_JOB_STATUS_RUNNING):
                self._update(row.job_id, status=_S.TRAINING_JOB_STATUS_FAILED, error="interrupted by a Simic restart")

    def _now(self) -> timestamp_pb2.Timestamp:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromMicroseconds(int(self._clock() * 1_000_000))
        return stamp


def policy_update(
    artifact: PolicyArtifact, metrics: dict[str, float], *, transition_count: int, now: timestamp_pb2.Timestamp
) -> control_pb2.PolicyUpdate:
    message = control_pb2.PolicyUpdate(
        policy_id=artifact.policy_id,
        version=artifact.version,
        parent_policy_id=str(artifact.card.get("parent_policy_id", "")),
        sha256=artifact.sha256,
        artifact_uri=f"simic:policies/{artifact.policy_id}",
        metrics={key: float(value) for key, value in metrics.items()},
        card_json=artifact.card_json(),
        transition_count=transition_count,
        feature_schema_version=artifact.feature_schema_version,
    )
    message.create_time.CopyFrom(now)
    return message


def _us(stamp: timestamp_pb2.Timestamp) -> int:
    return int(stamp.ToMicroseconds())


def describe(job: simic_pb2.TrainingJob) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": simic_pb2.TrainingJobStatus.Name(job.status).removeprefix("TRAINING_JOB_STATUS_"),
        "policy_id": job.policy.policy_id,
        "published": job.published,
        "error": job.error_message,
    }
