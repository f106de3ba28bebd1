"""One torch.export operation at a time in a process.

torch keeps part of its tracing state in process-wide globals, not per thread: the
pre-dispatch mode stack that `torch.export.export` pushes its tracer onto, and the
deserializer that `torch.export.load` installs. Two threads exporting at once, or one
exporting while another loads or lowers, see each other's tracer and fail
("ProxyTorchDispatchMode slot already occupied", "Expected py_sym_types",
"_CURRENT_DESERIALIZER is already set"). That happens wherever compilation runs in a
thread beside a process that also loads kernels: the embedded run's compile workers
beside its kernel prefetch and germinations, or in-process servers in one test process.

Every pass in `esper.tezzeret.passes` (`@exclusive`) and every artifact load holds
`EXPORT_LOCK`. It is re-entrant, so a pass that calls another (folding re-exports)
nests freely, and it is held per pass, not per compile, so a load waits for the pass in
progress rather than a whole compile. Running a loaded kernel needs no lock: it traces
nothing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

EXPORT_LOCK = threading.RLock()


def exclusive(function: Callable[P, R]) -> Callable[P, R]:
    """`function` runs holding EXPORT_LOCK."""

    @functools.wraps(function)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        with EXPORT_LOCK:
            return function(*args, **kwargs)

    return locked
