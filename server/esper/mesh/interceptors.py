"""The one server interceptor: turns exceptions from any handler into rich statuses.

Domain errors (EsperError) become their status code with ErrorInfo, BadRequest and
RetryInfo details. Anything else is a bug: the client gets INTERNAL with a generic
message and the traceback goes to this server's log, never over the wire.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from esper.errors import EsperError, Unimplemented
from esper.mesh.errors import grpc_status_from_error, internal_rpc_status

logger = logging.getLogger(__name__)

Behavior = Callable[..., Any]

# Codes that mean the server, not the caller, has a problem: worth a warning.
_SERVER_SIDE_CODES = frozenset({"INTERNAL", "DATA_LOSS", "UNAVAILABLE", "UNKNOWN"})


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every method handler so no exception escapes as an unstructured status."""

    # grpc-stubs types the continuation's result as never None, but grpc answers None
    # for a method no servicer implements (the client then gets UNIMPLEMENTED).
    async def intercept_service(  # type: ignore[override]
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_streaming(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_streaming(handler.stream_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _wrap_unary(behavior: Behavior, method: str) -> Behavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_with(exc, method, context)

    return wrapped


def _wrap_streaming(behavior: Behavior, method: str) -> Behavior:
    # A streaming handler either yields its responses (async generator) or writes them
    # with context.write (coroutine); grpc.aio picks the protocol from the function's
    # kind, so the wrapper must be of the same kind.
    if inspect.isasyncgenfunction(behavior):

        async def wrapped_generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_with(exc, method, context)

        return wrapped_generator
    return _wrap_unary(behavior, method)


async def _abort_with(exc: Exception, method: str, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, NotImplementedError):
        # What a generated base servicer raises for an rpc nobody implemented.
        exc = Unimplemented(f"{method} is not implemented by this server")
    if isinstance(exc, EsperError):
        if exc.code in _SERVER_SIDE_CODES:
            logger.warning("%s failed: %s (%s): %s", method, exc.code, exc.reason, exc.message)
        else:
            logger.debug("%s refused: %s (%s): %s", method, exc.code, exc.reason, exc.message)
        status = grpc_status_from_error(exc)
    else:
        logger.exception("%s raised an unexpected error", method)
        status = rpc_status.to_status(internal_rpc_status())
    await context.abort(status.code, status.details, status.trailing_metadata)
