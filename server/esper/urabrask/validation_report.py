"""Building validation reports: failure reasons with a stable category, and the final report.

A failure reason reads "<category>: <detail>"; the category (one of FAILURE_CATEGORIES)
is stable, so operators and tests can tell a crash from a numerical failure without
parsing the detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from esper.leyline.v1 import kernel_pb2

Report = kernel_pb2.UrabraskValidationReport

# The kernel did not run to the end: it failed to load, raised, was killed or timed out.
CRASH = "crash"
# An output or a parameter gradient held NaN or Inf.
NON_FINITE = "non_finite"
# The output differed from the eager build of the same IR by more than the pipeline's tolerance.
PRECISION_DRIFT = "precision_drift"
# The kernel's declared or actual shapes disagree with its IR.
SHAPE_MISMATCH = "shape_mismatch"
# The kernel was built for hardware this validator cannot benchmark.
HARDWARE_MISMATCH = "hardware_mismatch"
# The stored artifact's bytes do not match their SHA-256; they were never loaded.
CHECKSUM_MISMATCH = "checksum_mismatch"
# The kernel is unsigned, or signed by a key this validator does not trust; it was never loaded.
BAD_SIGNATURE = "bad_signature"
# The artifact failed its format check (unexpected or duplicate entries, pickled payloads); never loaded.
UNSAFE_ARTIFACT = "unsafe_artifact"

FAILURE_CATEGORIES = (
    CRASH,
    NON_FINITE,
    PRECISION_DRIFT,
    SHAPE_MISMATCH,
    HARDWARE_MISMATCH,
    CHECKSUM_MISMATCH,
    BAD_SIGNATURE,
    UNSAFE_ARTIFACT,
)


def failure_reason(category: str, detail: str) -> str:
    """ "<category>: <detail>" for a report's failure_reason."""
    if category not in FAILURE_CATEGORIES:
        raise ValueError(f"unknown failure category {category!r}")
    return f"{category}: {detail}"


def failure_category(reason: str) -> str:
    """The category of a failure_reason; empty if it has none."""
    category, sep, _ = reason.partition(":")
    return category if sep and category in FAILURE_CATEGORIES else ""


def failed_report(kernel_id: str, category: str, detail: str) -> Report:
    """A failed report with nothing measured."""
    return Report(kernel_id=kernel_id, passed=False, failure_reason=failure_reason(category, detail))


def finish_report(
    measured: Report, *, hardware_target: str, tags: Iterable[str], now: datetime | None = None
) -> Report:
    """The report to submit: what the sandbox measured, plus target, tags and time.

    Tags are kept only on a passed report; a passed report has no failure reason.
    """
    report = Report()
    report.CopyFrom(measured)
    report.hardware_target = hardware_target
    del report.tags[:]
    if report.passed:
        report.failure_reason = ""
        report.tags.extend(tags)
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(now if now is not None else datetime.now(UTC))
    report.create_time.CopyFrom(timestamp)
    return report
