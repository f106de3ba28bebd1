"""Typed clients, one per Leyline service: the service's generated calls over the client base.

Each has the method names of its service's domain (`UrzaClient.get_kernel` is the
`UrzaHub.get_kernel` of the in-process hub), a deadline on every call and retries
of UNAVAILABLE and RetryInfo statuses only (esper.clients.base). A new rpc in a
.proto appears here after `make proto`, with nothing to write.
"""

from __future__ import annotations

from esper.clients.base import ClientConfig, ServiceClient
from esper.leyline.v1 import services

__all__ = [
    "ClientConfig",
    "KarnClient",
    "KasminaClient",
    "NissaClient",
    "SimicClient",
    "TamiyoClient",
    "TezzeretClient",
    "TolariaClient",
    "UrabraskClient",
    "UrzaClient",
]


class KarnClient(ServiceClient, services.KarnServiceCalls):
    """KarnService over the wire."""


class KasminaClient(ServiceClient, services.KasminaServiceCalls):
    """KasminaService over the wire. `stream_telemetry`'s timeout bounds the whole stream: pass a run's length."""


class NissaClient(ServiceClient, services.NissaServiceCalls):
    """NissaService over the wire."""


class SimicClient(ServiceClient, services.SimicServiceCalls):
    """SimicService over the wire."""


class TamiyoClient(ServiceClient, services.TamiyoServiceCalls):
    """TamiyoService over the wire. A retried Step is safe: the controller answers a repeated
    request with the same response instead of deciding twice."""


class TezzeretClient(ServiceClient, services.TezzeretServiceCalls):
    """TezzeretService over the wire."""


class TolariaClient(ServiceClient, services.TolariaServiceCalls):
    """TolariaService over the wire. A retried CreateRun is safe when the request carries a run
    id: the server answers a repeat of the same request with the run it already created.
    `stream_run_events`'s timeout bounds the whole stream: pass a run's length."""


class UrabraskClient(ServiceClient, services.UrabraskServiceCalls):
    """UrabraskService over the wire."""


class UrzaClient(ServiceClient, services.UrzaServiceCalls):
    """UrzaService over the wire. A retry is harmless even when the server had already acted:
    completions, failures and reports are idempotent by lease token, and a repeated claim
    re-issues the worker's own running job."""
