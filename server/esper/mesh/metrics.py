"""Prometheus on the gRPC server edge: the time and final status code of every rpc.

`MetricsInterceptor` must sit outside `ErrorInterceptor` (earlier in the server's
interceptor list): it then sees the status the client gets, after domain errors were
mapped to their codes. Health checks and reflection are not recorded: probes would
drown the rpcs that matter.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from esper.observability.metrics import RPC_SERVER_DURATION

Behavior = Callable[..., Any]

_UNRECORDED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Observes esper_rpc_server_duration_seconds{grpc_service, grpc_method, grpc_code} for every rpc."""

    # grpc-stubs types the continuation's result as never None; see ErrorInterceptor.
    async def intercept_service(  # type: ignore[override]
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_UNRECORDED_PREFIXES):
            return handler
        service, _, name = method.lstrip("/").rpartition("/")
        histogram = _RpcTimer(service, name)
        kinds = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler, False),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler, True),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler, False),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler, True),
        )
        for behavior, make_handler, streams_responses in kinds:
            if behavior is not None:
                return make_handler(
                    histogram.wrap(behavior, as_generator=streams_responses),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


class _RpcTimer:
    """Wraps one method's behavior so each call is timed and labelled with its final code."""

    def __init__(self, service: str, method: str) -> None:
        self._service = service
        self._method = method

    def wrap(self, behavior: Behavior, *, as_generator: bool) -> Behavior:
        """A timed `behavior`; a response-streaming one always as an async generator.

        A streaming handler either yields its responses or writes them with context.write
        and returns. The OpenTelemetry interceptor outside this one only iterates, so the
        writing kind is presented as a generator that yields nothing (its writes go out
        through the context as before).
        """
        if as_generator:
            yields = inspect.isasyncgenfunction(behavior)

            async def timed_generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started = time.perf_counter()
                error: BaseException | None = None
                try:
                    if yields:
                        async for response in behavior(request, context):
                            yield response
                    else:
                        await behavior(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._observe(started, context, error)

            return timed_generator

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._observe(started, context, error)

        return timed

    def _observe(self, started: float, context: grpc.aio.ServicerContext, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - started
        code = status_code_name(context, error)
        RPC_SERVER_DURATION.labels(grpc_service=self._service, grpc_method=self._method, grpc_code=code).observe(
            elapsed
        )


def status_code_name(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The status the client gets: the one set on the context (abort or set_code), else from `error`."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int) and not isinstance(code, bool):
        found = next((status for status in grpc.StatusCode if status.value[0] == code), None)
        if found is not None:
            return found.name
    if error is None or isinstance(error, GeneratorExit):
        return "OK" if error is None else "CANCELLED"
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN"
