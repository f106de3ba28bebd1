"""Simic in process: the replay store (field reports, transitions), policy training and the policies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from esper.leyline.v1 import simic_pb2
from esper.paging import encode_page_token
from esper.simic.config import SimicConfig
from esper.simic.db import SimicDatabase
from esper.simic.experience import TransitionStore
from esper.simic.policy_store import PolicyStore
from esper.simic.requests import (
    POLICY_LISTING,
    check_get_policy,
    check_get_training_job,
    check_list_field_reports,
    check_list_policies,
    check_record_field_reports,
    check_record_transitions,
    check_train_policy,
)
from esper.simic.store import FieldReportStore
from esper.simic.training import PolicyTrainer, Publisher
from esper.urza.store import ObjectStore, open_object_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimicStatus:
    """Reports at rest, and what this process recorded since it started."""

    stored: int
    accepted: int
    duplicates: int


class SimicService:
    """The in-process Simic (implements SimicServiceApi). Safe to call from several threads."""

    def __init__(
        self,
        database: SimicDatabase,
        config: SimicConfig | None = None,
        *,
        objects: ObjectStore | None = None,
        publish: Publisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._store = FieldReportStore(database)
        self._config = config or SimicConfig()
        store = objects if objects is not None else open_object_store(_StoreSettings(self._config))
        self._experience = TransitionStore(database, store)
        self._policies = PolicyStore(database, store)
        self._trainer = PolicyTrainer(
            database, self._experience, self._policies, self._config, publish=publish, clock=clock
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._accepted = 0
        self._duplicates = 0

    @classmethod
    def open(cls, config: SimicConfig, *, publish: Publisher | None = None) -> SimicService:
        """Simic over the database and object store `config` names, created if they do not exist yet.

        `publish` announces a policy that passed the validation gate (on Oona, for Tamiyo).
        """
        database = SimicDatabase.open(config.resolved_database_url)
        try:
            return cls(database, config, publish=publish)
        except BaseException:
            database.close()
            raise

    @property
    def experience(self) -> TransitionStore:
        return self._experience

    @property
    def policies(self) -> PolicyStore:
        return self._policies

    def record_field_reports(
        self, request: simic_pb2.RecordFieldReportsRequest
    ) -> simic_pb2.RecordFieldReportsResponse:
        check_record_field_reports(request, self._config)
        recorded = self._store.add(request.reports, int(self._clock() * 1_000_000))
        with self._lock:
            self._accepted += recorded.accepted
            self._duplicates += recorded.duplicates
        if recorded.duplicates:
            logger.debug("dropped %d duplicate field reports", recorded.duplicates)
        return simic_pb2.RecordFieldReportsResponse(
            accepted_count=recorded.accepted, duplicate_count=recorded.duplicates
        )

    def list_field_reports(self, request: simic_pb2.ListFieldReportsRequest) -> simic_pb2.ListFieldReportsResponse:
        page_request = check_list_field_reports(request, self._config)
        page = self._store.page(run_id=page_request.run_id, before=page_request.before, limit=page_request.page_size)
        token = encode_page_token(page.cursor, page_request.fingerprint) if page.more else ""
        return simic_pb2.ListFieldReportsResponse(
            reports=page.reports,
            next_page_token=token,
            total_size=self._store.count(run_id=page_request.run_id),
        )

    def record_transitions(self, request: simic_pb2.RecordTransitionsRequest) -> simic_pb2.RecordTransitionsResponse:
        check_record_transitions(request, self._config)
        recorded = self._experience.add(request.transitions, int(self._clock() * 1_000_000))
        return simic_pb2.RecordTransitionsResponse(
            accepted_count=recorded.accepted, duplicate_count=recorded.duplicates
        )

    def train_policy(self, request: simic_pb2.TrainPolicyRequest) -> simic_pb2.TrainPolicyResponse:
        """Start a job; it runs in the background (GetTrainingJob follows it)."""
        check_train_policy(request)
        job = self._trainer.submit(request)
        return simic_pb2.TrainPolicyResponse(job_id=job.job_id, status=job.status, create_time=job.create_time)

    def get_training_job(self, request: simic_pb2.GetTrainingJobRequest) -> simic_pb2.GetTrainingJobResponse:
        check_get_training_job(request)
        return simic_pb2.GetTrainingJobResponse(job=self._trainer.get(request.job_id))

    def get_policy(self, request: simic_pb2.GetPolicyRequest) -> simic_pb2.GetPolicyResponse:
        check_get_policy(request)
        policy, _ = self._policies.get(request.policy_id)
        weights = self._policies.weights(request.policy_id) if request.include_weights else b""
        return simic_pb2.GetPolicyResponse(policy=policy, weights=weights)

    def list_policies(self, request: simic_pb2.ListPoliciesRequest) -> simic_pb2.ListPoliciesResponse:
        page_size, before = check_list_policies(request, self._config)
        page = self._policies.page(before=before, limit=page_size)
        token = encode_page_token(page.cursor, POLICY_LISTING) if page.more else ""
        return simic_pb2.ListPoliciesResponse(policies=page.policies, next_page_token=token)

    def status(self) -> SimicStatus:
        with self._lock:
            accepted, duplicates = self._accepted, self._duplicates
        return SimicStatus(stored=self._store.count(), accepted=accepted, duplicates=duplicates)

    def close(self) -> None:
        self._trainer.close()
        self._database.close()


@dataclass(frozen=True)
class _StoreSettings:
    """The object store `SimicConfig` names, as `open_object_store` reads it."""

    config: SimicConfig

    @property
    def store(self) -> str:
        return self.config.resolved_store

    @property
    def s3_endpoint_url(self) -> str | None:
        return self.config.s3_endpoint_url

    @property
    def s3_access_key(self) -> str | None:
        return self.config.s3_access_key

    @property
    def s3_secret_key(self) -> str | None:
        return self.config.s3_secret_key

    @property
    def s3_region(self) -> str:
        return self.config.s3_region
