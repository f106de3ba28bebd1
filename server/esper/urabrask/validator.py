"""The validator worker: claim a compiled kernel, characterize it, submit the verdict.

One pass: lease the oldest COMPILED kernel from Urza (it becomes VALIDATING),
download its bytes (SHA-256 verified), check its compile worker's signature against
the trusted keys and its format (nothing unsigned or malformed ever reaches the
sandbox), run it in the sandbox, tag it against its validated peers, and submit the
report; Urza makes the kernel VALIDATED or REJECTED.
A validator that dies mid-way loses only its lease: the kernel is claimable again
when the lease runs out.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from esper.errors import DataLoss, EsperError
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, urza_pb2
from esper.leyline.v1.services import UrzaServiceApi
from esper.trust.artifact_format import UnsafeArtifact, check_artifact_format
from esper.trust.kernel_signing import KernelSignatureError, TrustedSigners
from esper.urabrask import validation_report as reports
from esper.urabrask.config import UrabraskConfig
from esper.urabrask.kernels import Report, reports_with_status
from esper.urabrask.sandbox import run_sandbox
from esper.urabrask.tagging import assign_tags
from esper.urza.fetch import download_kernel_bytes

logger = logging.getLogger(__name__)

# (artifact bytes, kernel, ir, config) -> measured report; run_sandbox unless a test swaps it.
Characterize = Callable[[bytes, kernel_pb2.KernelArtifact, blueprint_pb2.BlueprintIR, UrabraskConfig], Report]


class UrabraskValidator:
    """Validates kernels from an UrzaServiceApi one at a time; keeps the latest reports it submitted."""

    def __init__(
        self,
        urza: UrzaServiceApi,
        config: UrabraskConfig,
        *,
        characterize: Characterize = run_sandbox,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        trust: TrustedSigners | None = None,
    ) -> None:
        self._urza = urza
        self._trust = trust
        self.config = config
        self._characterize = characterize
        self._clock = clock
        self._recent: deque[Report] = deque(maxlen=config.recent_reports)
        self._lock = threading.Lock()

    def run_once(self) -> Report | None:
        """Validate one kernel; the submitted report, or None when nothing waits for validation."""
        config = self.config
        claim = self._urza.claim_validation_job(
            urza_pb2.ClaimValidationJobRequest(
                worker_id=config.worker_id, lease_seconds=config.lease_seconds, hardware_target=config.hardware_target
            )
        )
        if not claim.HasField("kernel"):
            return None
        kernel = claim.kernel
        logger.info("validating kernel %s", kernel.kernel_id)
        measured = self._measure(kernel, claim.ir)
        measured.hardware_target = config.hardware_target
        peers = reports_with_status(self._urza, kernel_pb2.KERNEL_STATUS_VALIDATED, limit=config.peer_window)
        tags = assign_tags(measured, peers, config.tagging) if measured.passed else []
        report = reports.finish_report(measured, hardware_target=config.hardware_target, tags=tags, now=self._clock())
        result = self._urza.submit_validation_report(
            urza_pb2.SubmitValidationReportRequest(
                kernel_id=kernel.kernel_id, lease_token=claim.lease_token, report=report
            )
        )
        status = kernel_pb2.KernelStatus.Name(result.kernel.status)
        if report.passed:
            logger.info("kernel %s %s, tags %s", kernel.kernel_id, status, list(report.tags))
        else:
            logger.warning("kernel %s %s: %s", kernel.kernel_id, status, report.failure_reason)
        with self._lock:
            self._recent.appendleft(report)
        return report

    def run_forever(self, stop: threading.Event) -> None:
        """Validate until `stop` is set, waiting `poll_interval_seconds` when idle or after an error."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except EsperError as exc:
                logger.warning("validation pass failed: %s (%s): %s", exc.code, exc.reason, exc.message)
                report = None
            except Exception:
                logger.exception("validation pass failed")
                report = None
            if report is None:
                stop.wait(self.config.poll_interval_seconds)

    def recent_reports(self) -> list[Report]:
        """Reports this validator submitted, newest first (at most `recent_reports`)."""
        with self._lock:
            return list(self._recent)

    def _measure(self, kernel: kernel_pb2.KernelArtifact, ir: blueprint_pb2.BlueprintIR) -> Report:
        ours = self.config.hardware_target
        if kernel.hardware_target and kernel.hardware_target != ours:
            return reports.failed_report(
                kernel.kernel_id,
                reports.HARDWARE_MISMATCH,
                f"built for {kernel.hardware_target}; this validator benchmarks {ours}",
            )
        try:
            artifact, _ = download_kernel_bytes(self._urza, kernel.kernel_id)
        except DataLoss as exc:
            # The stored bytes are not the ones compiled: nothing may load them.
            return reports.failed_report(kernel.kernel_id, reports.CHECKSUM_MISMATCH, str(exc))
        if self.config.require_signature:
            try:
                if self._trust is None:
                    raise KernelSignatureError("no trusted signing key is configured; nothing is run unverified")
                self._trust.verify(kernel, hashlib.sha256(artifact).hexdigest())
            except KernelSignatureError as exc:
                return reports.failed_report(kernel.kernel_id, reports.BAD_SIGNATURE, str(exc))
        try:
            check_artifact_format(artifact, kernel.pipeline)
        except UnsafeArtifact as exc:
            return reports.failed_report(kernel.kernel_id, reports.UNSAFE_ARTIFACT, str(exc))
        return self._characterize(artifact, kernel, ir, self.config)
