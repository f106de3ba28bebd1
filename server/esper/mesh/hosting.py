"""Servicers from service descriptors: each rpc calls the domain method of the same name.

`host(SERVICE.bind(domain))` is everything a subsystem writes to serve a service:
for every rpc of the descriptor, the request goes to `domain.<rpc in snake_case>`
and its return value (an iterator of responses for a server-streaming rpc) goes
back. A domain method that is missing is an error at start-up, naming the rpc.
Domain errors become statuses in the mesh's error interceptor, as for any handler.

Domain methods are synchronous and may block (databases, the training loop's
lock), so by default each call runs in a worker thread, with the caller's
context (its trace) carried over. `on_loop` names rpcs (or, with True, all of
them) cheap enough to run on the event loop; `executors` gives an rpc a thread
pool of its own, e.g. for long-lived streams that should not take the threads
unary calls need. A stream's iterator is advanced in the same place, one response
at a time, and closed when the client leaves or the server stops. `stream_deadlines`
gives a server-streaming rpc a server-side deadline: however slowly its client
reads, the stream ends with DEADLINE_EXCEEDED once it has run that long (a stalled
reader cannot hold the server's resources for ever).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from concurrent.futures import Executor
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from esper.errors import DeadlineExceeded
from esper.leyline.v1.services import Binding
from esper.mesh.server import ServiceRegistration

Runner = Callable[..., Awaitable[Any]]
_END = object()


def rpc_method_name(rpc: str) -> str:
    """The domain method an rpc calls: "ListTemplates" -> "list_templates"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", rpc).lower()


def host(
    binding: Binding[Any],
    *,
    on_loop: bool | Collection[str] = False,
    executors: Mapping[str, Executor] | None = None,
    stream_deadlines: Mapping[str, float] | None = None,
) -> ServiceRegistration:
    """What build_server needs to serve `binding.service` by calling `binding.domain`.

    `on_loop` and `executors` name rpcs by their proto names ("GetWorkerStatus").
    """
    descriptor = binding.service.descriptor
    rpcs = {method.name for method in descriptor.methods}
    named = set() if isinstance(on_loop, bool) else set(on_loop)
    unknown = (named | set(executors or {}) | set(stream_deadlines or {})) - rpcs
    if unknown:
        raise ValueError(f"{descriptor.full_name} has no rpc {', '.join(sorted(unknown))}")
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in descriptor.methods:
        behavior = _domain_method(binding.domain, descriptor.full_name, method)
        if on_loop is True or method.name in named:
            runner: Runner = _on_loop
        elif executors and method.name in executors:
            runner = functools.partial(_in_executor, executors[method.name])
        else:
            runner = _in_thread
        deadline = (stream_deadlines or {}).get(method.name)
        handlers[method.name] = _handler(method, behavior, runner, deadline)
    name = descriptor.full_name

    def add_to_server(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        # As generated servicers do: registered methods are looked up before the generic handlers.
        register: Any = getattr(server, "add_registered_method_handlers", None)
        if register is not None:
            register(name, handlers)

    return ServiceRegistration(service_name=name, add_to_server=add_to_server, domain=binding.domain)


def _domain_method(domain: object, service: str, method: MethodDescriptor) -> Callable[[Any], Any]:
    name = rpc_method_name(method.name)
    behavior = getattr(domain, name, None)
    if not callable(behavior):
        raise TypeError(f"{type(domain).__name__} has no method {name}() for rpc {service}/{method.name}")
    return behavior


def _handler(
    method: MethodDescriptor, behavior: Callable[[Any], Any], run: Runner, deadline: float | None = None
) -> grpc.RpcMethodHandler:
    if method.client_streaming:
        raise TypeError(f"{method.full_name}: client-streaming rpcs are not hosted")
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    if deadline is not None and not method.server_streaming:
        raise TypeError(f"{method.full_name}: a stream deadline needs a server-streaming rpc")
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(behavior, run) if deadline is None else _streaming_until(behavior, run, deadline, method.name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    return grpc.unary_unary_rpc_method_handler(
        _unary(behavior, run),
        request_deserializer=request.FromString,
        response_serializer=response.SerializeToString,
    )


def _unary(behavior: Callable[[Any], Any], run: Runner) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run(behavior, request)

    return handle


def _streaming(
    behavior: Callable[[Any], Any], run: Runner
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        stream: Iterator[Any] = await run(behavior, request)
        try:
            while (response := await run(next, stream, _END)) is not _END:
                yield response
        finally:
            # The client left or the server stops: release whatever waits for the next response.
            close = getattr(stream, "close", None)
            if callable(close):
                close()

    return handle


def _streaming_until(
    behavior: Callable[[Any], Any], run: Runner, seconds: float, rpc: str
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        stream: Iterator[Any] = await run(behavior, request)
        try:
            while (response := await run(next, stream, _END)) is not _END:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(context.write(response), remaining)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"{rpc} took longer than its {seconds:g} s server-side deadline; start it again",
                        reason="RESOURCE_EXHAUSTED",
                    ) from None
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                await run(close)

    return handle


async def _on_loop(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


async def _in_executor(executor: Executor, function: Callable[..., Any], *args: Any) -> Any:
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(context.run, function, *args))
