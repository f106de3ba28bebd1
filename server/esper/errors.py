"""Domain exceptions shared by every subsystem.

Each carries a gRPC status code name and a stable reason (an `ErrorReason` value
name without its prefix). Domain code raises these and never imports grpc; the
server's error interceptor turns them into `google.rpc.Status` with `ErrorInfo`,
and the client base turns them back into the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR_DOMAIN = "esper.leyline.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field: its dotted path and what is wrong with it."""

    field: str
    description: str


class EsperError(Exception):
    """Base of every domain error. `code` is a grpc.StatusCode name."""

    code = "INTERNAL"
    reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})
        self.retry_after_seconds = retry_after_seconds

    def __str__(self) -> str:
        return self.message


class InvalidArgument(EsperError, ValueError):
    """A request or a config failed validation; `violations` name the fields.

    Also a ValueError: a config object refuses a bad value the way Python code expects.
    """

    code = "INVALID_ARGUMENT"
    reason = "INVALID_FIELD"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = list(violations or [])

    @classmethod
    def for_field(cls, field_path: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls(
            f"{field_path}: {description}",
            violations=[FieldViolation(field_path, description)],
            reason=reason,
        )


class NotFound(EsperError):
    code = "NOT_FOUND"
    reason = "NOT_FOUND"


class AlreadyExists(EsperError):
    code = "ALREADY_EXISTS"
    reason = "ALREADY_EXISTS"


class FailedPrecondition(EsperError):
    code = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class Unavailable(EsperError):
    code = "UNAVAILABLE"
    reason = "DEPENDENCY_UNAVAILABLE"


class Unimplemented(EsperError):
    code = "UNIMPLEMENTED"
    reason = "UNIMPLEMENTED"


class DataLoss(EsperError):
    code = "DATA_LOSS"
    reason = "CHECKSUM_MISMATCH"


class DeadlineExceeded(EsperError):
    code = "DEADLINE_EXCEEDED"
    reason = "DEPENDENCY_UNAVAILABLE"


class PermissionDenied(EsperError):
    """The caller is known but its role may not do this; the message names the roles that may."""

    code = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class Unauthenticated(EsperError):
    code = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"


class ResourceExhausted(EsperError):
    """A bound was reached (runs, streams, submissions, concurrent calls); a later retry may pass."""

    code = "RESOURCE_EXHAUSTED"
    reason = "RESOURCE_EXHAUSTED"


class UsageError(Exception):
    """A command-line argument is wrong; the message names it (the CLI exits with status 2)."""


@dataclass
class ErrorDetails:
    """What a client decodes from a status: used to rebuild the domain error."""

    code: str
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)
    retry_after_seconds: float | None = None


_BY_CODE: dict[str, type[EsperError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        Unimplemented,
        DataLoss,
        DeadlineExceeded,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
    )
}


def error_from_details(details: ErrorDetails) -> EsperError:
    """Rebuild the domain exception a server raised from its decoded status."""
    cls = _BY_CODE.get(details.code, EsperError)
    error: EsperError
    if cls is InvalidArgument:
        error = InvalidArgument(
            details.message,
            violations=details.violations,
            reason=details.reason or None,
            metadata=details.metadata,
        )
    else:
        error = cls(
            details.message,
            reason=details.reason or None,
            metadata=details.metadata,
            retry_after_seconds=details.retry_after_seconds,
        )
    if cls is EsperError:
        error.code = details.code
    return error
