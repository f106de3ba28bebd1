"""The one authorization check every rpc passes through: the caller's role against the contract's rule.

On a server that speaks mTLS (esper.mesh.tls), the caller is the identity in its
verified certificate. Each method handler is wrapped so that, before the handler
runs, a call without an identity is refused with UNAUTHENTICATED and one whose
identity the rpc's `allowed` option does not list with PERMISSION_DENIED naming the
roles that may call it (ErrorInfo reason PERMISSION_DENIED, the roles and the caller
in its metadata). Methods outside the contracts (health, reflection, the OTLP trace
receiver) are open to any identity of the mesh. The caller's identity is also made
available to the domain for the call (`esper.trust.caller`), e.g. for quotas.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from esper.errors import EsperError, PermissionDenied, Unauthenticated
from esper.mesh.errors import grpc_status_from_error
from esper.mesh.tls import caller_identity
from esper.trust.access import AccessRule, access_rules
from esper.trust.caller import CALLER

Behavior = Callable[..., Any]


class AuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call whose caller the rpc's declared rule does not allow, before its handler runs."""

    def __init__(self, rules: Mapping[str, AccessRule] | None = None) -> None:
        self._rules = rules if rules is not None else access_rules()

    async def intercept_service(  # type: ignore[override]
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        rule = self._rules.get(method)
        for kind, factory in _FACTORIES.items():
            behavior = getattr(handler, kind)
            if behavior is not None:
                return factory(
                    _guarded(behavior, method, rule),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


_FACTORIES: dict[str, Callable[..., grpc.RpcMethodHandler]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def check_caller(context: grpc.aio.ServicerContext, method: str, rule: AccessRule | None) -> str:
    """The caller's identity if `rule` allows it; Unauthenticated or PermissionDenied otherwise."""
    identity = caller_identity(context)
    if identity is None:
        raise Unauthenticated(f"{method}: the call carries no certificate of this mesh")
    if rule is not None and not rule.allows(identity):
        roles = ", ".join(sorted(rule.roles))
        raise PermissionDenied(
            f"{method} needs role {roles}; the caller is {identity!r}",
            metadata={"required_roles": roles, "caller": identity},
        )
    return identity


def _guarded(behavior: Behavior, method: str, rule: AccessRule | None) -> Behavior:
    # grpc.aio picks the streaming protocol from the function's kind, so the wrapper must keep it.
    if inspect.isasyncgenfunction(behavior):

        async def guarded_generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            token = await _admit(context, method, rule)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                CALLER.reset(token)

        return guarded_generator

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = await _admit(context, method, rule)
        try:
            return await behavior(request, context)
        finally:
            CALLER.reset(token)

    return guarded


async def _admit(context: grpc.aio.ServicerContext, method: str, rule: AccessRule | None) -> Any:
    try:
        identity = check_caller(context, method, rule)
    except EsperError as refused:
        status = grpc_status_from_error(refused)
        await context.abort(status.code, status.details, status.trailing_metadata)
    return CALLER.set(identity)
