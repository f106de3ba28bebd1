"""Simic in process: the field-report replay buffer, and the policy rpcs Simic's own issue builds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from esper.errors import Unimplemented
from esper.leyline.v1 import simic_pb2
from esper.paging import encode_page_token
from esper.simic.config import SimicConfig
from esper.simic.db import SimicDatabase
from esper.simic.requests import (
    check_get_policy,
    check_list_field_reports,
    check_list_policies,
    check_record_field_reports,
    check_train_policy,
)
from esper.simic.store import FieldReportStore

logger = logging.getLogger(__name__)

POLICY_TRAINING_PENDING = (
    "Simic does not train policies yet: policy training is built by Simic's own issue; "
    "until then Simic only records field reports (RecordFieldReports, ListFieldReports)"
)


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._store = FieldReportStore(database)
        self._config = config or SimicConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._accepted = 0
        self._duplicates = 0

    @classmethod
    def open(cls, config: SimicConfig) -> SimicService:
        """Simic over the database `config` names, created if it has no Simic schema yet."""
        return cls(SimicDatabase.open(config.resolved_database_url), config)

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

    def train_policy(self, request: simic_pb2.TrainPolicyRequest) -> simic_pb2.TrainPolicyResponse:
        check_train_policy(request)
        raise Unimplemented(f"TrainPolicy: {POLICY_TRAINING_PENDING}")

    def get_policy(self, request: simic_pb2.GetPolicyRequest) -> simic_pb2.GetPolicyResponse:
        check_get_policy(request)
        raise Unimplemented(f"GetPolicy: {POLICY_TRAINING_PENDING}")

    def list_policies(self, request: simic_pb2.ListPoliciesRequest) -> simic_pb2.ListPoliciesResponse:
        check_list_policies(request, self._config)
        raise Unimplemented(f"ListPolicies: {POLICY_TRAINING_PENDING}")

    def status(self) -> SimicStatus:
        with self._lock:
            accepted, duplicates = self._accepted, self._duplicates
        return SimicStatus(stored=self._store.count(), accepted=accepted, duplicates=duplicates)

    def close(self) -> None:
        self._database.close()
