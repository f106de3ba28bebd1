"""Domain error <-> google.rpc.Status, without sockets."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

from esper.errors import (
    AlreadyExists,
    DataLoss,
    EsperError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
    error_from_details,
)
from esper.mesh.config import ServerConfig
from esper.mesh.errors import (
    INTERNAL_MESSAGE,
    error_details_from_status,
    grpc_status_from_error,
    internal_rpc_status,
    rpc_status_from_error,
    status_code_of,
)


def _round_trip(error: EsperError) -> EsperError:
    status = rpc_status_from_error(error)
    return error_from_details(error_details_from_status(grpc.StatusCode[error.code], status.message, status))


@pytest.mark.parametrize(
    "error",
    [
        NotFound("no template 'x'", reason="TEMPLATE_NOT_FOUND", metadata={"template_id": "x"}),
        AlreadyExists("artifact exists", reason="ALREADY_EXISTS"),
        FailedPrecondition("run finished", reason="FAILED_PRECONDITION", retry_after_seconds=1.5),
        Unavailable("store down"),
        DataLoss("bad bytes", metadata={"kernel_id": "k"}),
    ],
)
def test_domain_errors_round_trip(error: EsperError) -> None:
    decoded = _round_trip(error)
    assert type(decoded) is type(error)
    assert (decoded.code, decoded.reason, decoded.message, decoded.metadata, decoded.retry_after_seconds) == (
        error.code,
        error.reason,
        error.message,
        error.metadata,
        error.retry_after_seconds,
    )


def test_invalid_argument_round_trips_every_violation() -> None:
    error = InvalidArgument(
        "two bad fields",
        violations=[FieldViolation("page_size", "too big"), FieldViolation("tiers[1]", "unknown tier 9")],
    )
    decoded = _round_trip(error)
    assert isinstance(decoded, InvalidArgument)
    assert decoded.violations == error.violations
    assert decoded.reason == "INVALID_FIELD"


def test_status_carries_error_info_in_the_esper_domain() -> None:
    status = rpc_status_from_error(NotFound("gone", reason="KERNEL_NOT_FOUND"))
    assert status.code == code_pb2.NOT_FOUND
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("KERNEL_NOT_FOUND", "esper.leyline.v1")
    assert len(status.details) == 1  # no BadRequest or RetryInfo when they do not apply


def test_grpc_status_puts_the_rich_status_in_trailing_metadata() -> None:
    status = grpc_status_from_error(InvalidArgument.for_field("tier", "unknown tier 7"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "tier: unknown tier 7"
    assert [key for key, _ in status.trailing_metadata] == ["grpc-status-details-bin"]


def test_unknown_code_name_falls_back_to_internal() -> None:
    error = EsperError("odd")
    error.code = "NOT_A_CODE"
    assert status_code_of(error) == grpc.StatusCode.INTERNAL


def test_internal_status_is_generic() -> None:
    status = internal_rpc_status()
    assert (status.code, status.message) == (code_pb2.INTERNAL, INTERNAL_MESSAGE)
    grpc_status = rpc_status.to_status(status)
    assert grpc_status.code == grpc.StatusCode.INTERNAL


def test_a_plain_status_decodes_to_the_class_of_its_code() -> None:
    details = error_details_from_status(grpc.StatusCode.UNAVAILABLE, "connect failed", None)
    decoded = error_from_details(details)
    assert isinstance(decoded, Unavailable)
    assert decoded.message == "connect failed"


@pytest.mark.parametrize(
    "kwargs",
    [{"service_name": ""}, {"service_name": "s", "port": -1}, {"service_name": "s", "grace_seconds": -1.0}],
)
def test_server_config_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


def test_server_config_brackets_ipv6_hosts() -> None:
    assert ServerConfig(service_name="s", host="::1", port=5).address == "[::1]:5"
    assert ServerConfig(service_name="s").address == "127.0.0.1:0"
