"""The identity of the caller of the rpc being served, for domain code that bounds per caller.

Set by the mesh's authorization check for the duration of each call (contextvars
follow the call into the worker thread that runs the domain method); None in
process, or on a server without mTLS.
"""

from __future__ import annotations

from contextvars import ContextVar

CALLER: ContextVar[str | None] = ContextVar("esper_caller", default=None)
