"""The wire form of Esper errors: domain exception <-> google.rpc.Status.

Both directions live here so the server's encoding and the client's decoding
cannot drift apart. A status carries `ErrorInfo` (stable reason, domain
"esper.leyline.v1", metadata), `BadRequest` for validation errors and `RetryInfo`
when the server knows when a retry may succeed.
"""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from esper.errors import ERROR_DOMAIN, ErrorDetails, EsperError, FieldViolation

INTERNAL_MESSAGE = "internal error; see server log"
INTERNAL_REASON = "INTERNAL"


def status_code_of(error: EsperError) -> grpc.StatusCode:
    """The gRPC status code an EsperError asks for; INTERNAL for an unknown name."""
    try:
        return grpc.StatusCode[error.code]
    except KeyError:
        return grpc.StatusCode.INTERNAL


def rpc_status_from_error(error: EsperError) -> status_pb2.Status:
    """The google.rpc.Status a server returns for a domain error."""
    code = status_code_of(error)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    status.details.add().Pack(info)
    violations: list[FieldViolation] = list(getattr(error, "violations", []))
    if violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ]
        )
        status.details.add().Pack(bad_request)
    if error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


def internal_rpc_status() -> status_pb2.Status:
    """The status for an unexpected exception: generic text, nothing from the exception."""
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=INTERNAL_REASON, domain=ERROR_DOMAIN))
    return status


def grpc_status_from_error(error: EsperError) -> grpc.Status:
    """The grpc.Status (code, message, trailing metadata with the rich status) for an error."""
    return rpc_status.to_status(rpc_status_from_error(error))


def error_details_from_status(code: grpc.StatusCode, message: str, status: status_pb2.Status | None) -> ErrorDetails:
    """Decode what a client received: the code, the message and the rich status if any."""
    details = ErrorDetails(code=code.name, message=message)
    if status is None:
        return details
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            details.reason = info.reason
            details.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            details.violations.extend(FieldViolation(v.field, v.description) for v in bad_request.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            details.retry_after_seconds = retry.retry_delay.ToNanoseconds() / 1e9
    return details
