"""The client base every typed Esper client is built on.

A typed client is this base plus the generated calls of one service
(`esper.leyline.v1.services.<Service>Calls`): the generated methods name the rpc
and its response type, the base makes the call.

Every call carries a deadline. Only what is safe to retry is retried: UNAVAILABLE
(exponential backoff with full jitter, bounded attempts, never past the deadline)
and statuses whose RetryInfo says when to come back. Every other failure is decoded
from the status details into the matching esper.errors exception, so callers handle
the same exceptions whether the domain object is local or remote. Every call is an
OpenTelemetry client span whose context travels in the call's metadata.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message
from grpc_status import rpc_status

from esper import checks
from esper.errors import DeadlineExceeded, EsperError, error_from_details
from esper.leyline.v1.services import Calls
from esper.mesh.errors import error_details_from_status
from esper.mesh.tls import secure_channel
from esper.mesh.tracing import traced_channel
from esper.trust.identity import TlsIdentity

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class ClientConfig:
    """How a client reaches one service.

    `deadline_seconds` bounds a whole call including its retries (for a stream: the
    whole stream). `max_attempts` counts the first try. With `tls` the channel speaks
    mTLS as that identity (a mesh's servers accept nothing else); without, plaintext.
    """

    address: str
    deadline_seconds: float = 5.0
    max_attempts: int = 4
    initial_backoff_seconds: float = 0.05
    max_backoff_seconds: float = 1.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    tls: TlsIdentity | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("address must be set")
        checks.positive("deadline_seconds", self.deadline_seconds)
        checks.positive("max_attempts", self.max_attempts)
        checks.non_negative("initial_backoff_seconds", self.initial_backoff_seconds)
        checks.at_least("max_backoff_seconds", self.max_backoff_seconds, self.initial_backoff_seconds)


def decode_rpc_error(error: grpc.RpcError) -> EsperError:
    """The esper.errors exception a failed call stands for."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (error.details() if isinstance(error, grpc.Call) else None) or str(code.name)
    try:
        status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
    except ValueError:
        # The rich status disagrees with the plain one (e.g. a proxy rewrote it): trust the plain one.
        status = None
    return error_from_details(error_details_from_status(code, message, status))


class ServiceClient(Calls):
    """A sync client for one service (`SERVICE`): a channel, deadlines, retries, error decoding."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        channel: grpc.Channel | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else self._open_channel(config)
        # Every call is a client span and carries the trace context in its metadata.
        self._rpcs = _multicallables(self.SERVICE, traced_channel(self._channel))
        self._sleep = sleep

    @staticmethod
    def _open_channel(config: ClientConfig) -> grpc.Channel:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            # Retries are ours (bounded, deadline-aware); keep the channel's own off.
            ("grpc.enable_retries", 0),
        ]
        if config.tls is not None:
            return secure_channel(config.address, config.tls, options)
        return grpc.insecure_channel(config.address, options=options)

    def _unary(self, method: str, request: Message, response_type: type[R], timeout: float | None) -> R:
        response = self.call(method, request, timeout=timeout)
        if not isinstance(response, response_type):
            raise TypeError(f"{method} answered {type(response).__name__}, not {response_type.__name__}")
        return response

    def _stream(self, method: str, request: Message, response_type: type[R], timeout: float | None) -> Iterator[R]:
        return self.stream(method, request, timeout=timeout)

    def call(self, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """Call unary rpc `method` (its proto name, e.g. "ListTemplates") and return its response."""
        multicallable = self._method(method)
        deadline = time.monotonic() + (timeout if timeout is not None else self.config.deadline_seconds)
        attempt = 1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _deadline_exceeded(method)
            try:
                return multicallable(request, timeout=remaining)
            except grpc.RpcError as exc:
                error = decode_rpc_error(exc)
                delay = self._retry_delay(error, attempt)
                if delay is None or time.monotonic() + delay >= deadline:
                    raise error from None
                logger.debug("%s: %s, retry %d in %.3f s", method, error.code, attempt, delay)
                self._sleep(delay)
                attempt += 1

    def stream(self, method: str, request: Any, *, timeout: float | None = None) -> Iterator[Any]:
        """Iterate the responses of server-streaming rpc `method`.

        The deadline covers the whole stream. A failure before the first response is
        retried like a unary call; after that it is raised (a resumed stream would
        repeat or skip responses).
        """
        multicallable = self._method(method)
        deadline = time.monotonic() + (timeout if timeout is not None else self.config.deadline_seconds)
        attempt = 1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _deadline_exceeded(method)
            received = False
            try:
                for response in multicallable(request, timeout=remaining):
                    received = True
                    yield response
                return
            except grpc.RpcError as exc:
                error = decode_rpc_error(exc)
                delay = None if received else self._retry_delay(error, attempt)
                if delay is None or time.monotonic() + delay >= deadline:
                    raise error from None
                self._sleep(delay)
                attempt += 1

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _method(self, method: str) -> Any:
        multicallable = self._rpcs.get(method)
        if multicallable is None:
            raise ValueError(f"{self.SERVICE.full_name} has no rpc {method!r}")
        return multicallable

    def _retry_delay(self, error: EsperError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None if this error must not be retried."""
        if attempt >= self.config.max_attempts:
            return None
        if error.retry_after_seconds is not None:
            return max(0.0, error.retry_after_seconds)
        if error.code != grpc.StatusCode.UNAVAILABLE.name:
            return None
        backoff = self.config.initial_backoff_seconds * 2 ** (attempt - 1)
        ceiling = min(self.config.max_backoff_seconds, backoff)
        return random.uniform(0.0, ceiling)


def _multicallables(service: Any, channel: Any) -> dict[str, Any]:
    """Each rpc of `service` as a callable on `channel`, by its proto name."""
    rpcs: dict[str, Any] = {}
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = channel.unary_stream if method.server_streaming else channel.unary_unary
        rpcs[method.name] = make(
            path,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
            _registered_method=True,
        )
    return rpcs


def _deadline_exceeded(method: str) -> EsperError:
    return DeadlineExceeded(f"{method}: deadline exceeded")
