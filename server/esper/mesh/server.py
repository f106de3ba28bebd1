"""Build, run and stop an Esper gRPC server.

Every server gets the tracing, metrics and error interceptors (outermost first),
and, when it speaks mTLS, the authorization check of esper.mesh.authorization;
grpc.health.v1 and server reflection, so `grpcurl` works against it with no .proto
at hand. `build_server` is separate from `serve_forever` so tests start a real
server on port 0 in-process. With `ServerConfig.metrics_port` set, `start_server`
also serves the process's Prometheus /metrics on the same host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from esper.errors import Unavailable
from esper.fsutil import atomic_write
from esper.mesh.authorization import AuthorizationInterceptor
from esper.mesh.config import ServerConfig
from esper.mesh.interceptors import ErrorInterceptor
from esper.mesh.metrics import MetricsInterceptor
from esper.mesh.tls import server_credentials
from esper.mesh.tracing import tracing_server_interceptor
from esper.observability.http import MetricsServer, start_metrics_server

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

# A long-running job served alongside the rpcs (e.g. a bus consumer). It gets an
# event that is set when the server begins to stop, and should return soon after.
BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to host: its full name, how it adds its handlers to a server, and the
    domain object behind it (esper.mesh.hosting.host builds one from a service descriptor)."""

    service_name: str
    add_to_server: Callable[[grpc.aio.Server], None]
    domain: object = None


@dataclass(frozen=True)
class RunningServer:
    """A started server with the handles needed to stop it properly."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    grace_seconds: float
    metrics: MetricsServer | None = None

    @property
    def metrics_port(self) -> int | None:
        return self.metrics.port if self.metrics is not None else None

    async def stop(self, grace_seconds: float | None = None) -> None:
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        try:
            await stop_server(self.server, self.health, grace)
        finally:
            # Last: the final scrape can still see the rpcs that drained.
            if self.metrics is not None:
                self.metrics.stop()


async def build_server(
    config: ServerConfig,
    registrations: Sequence[ServiceRegistration],
    *,
    health: HealthServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Create, bind and start a server hosting `registrations`; returns it and the bound port.

    Pass `health` to keep a handle on the health servicer (needed by stop_server);
    start_server does that for you.
    """
    health = health if health is not None else HealthServicer()
    # Outermost first: the span covers everything, the metrics see the status code an authorization
    # refusal or ErrorInterceptor made of a domain error, and no refused call reaches a handler.
    interceptors: list[grpc.aio.ServerInterceptor] = [tracing_server_interceptor(), MetricsInterceptor()]
    if config.tls is not None:
        interceptors.append(AuthorizationInterceptor())
    interceptors.append(ErrorInterceptor())
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            # Without this two servers could silently share one port.
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    names = [registration.service_name for registration in registrations]
    for registration in registrations:
        registration.add_to_server(server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection([*names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], server)
    for name in ["", *names]:
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    port = _bind(server, config)
    await server.start()
    for name in ["", *names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("%s serving %s on %s:%d", config.service_name, ", ".join(names), config.host, port)
    return server, port


async def start_server(config: ServerConfig, registrations: Sequence[ServiceRegistration]) -> RunningServer:
    """build_server (plus /metrics when `config.metrics_port` is set) and the handle to stop both."""
    health = HealthServicer()
    server, port = await build_server(config, registrations, health=health)
    metrics = None
    if config.metrics_port is not None:
        try:
            metrics = start_metrics_server(config.host, config.metrics_port)
        except BaseException:
            await stop_server(server, health, 0.0)
            raise
    return RunningServer(server=server, port=port, health=health, grace_seconds=config.grace_seconds, metrics=metrics)


async def stop_server(server: grpc.aio.Server, health: HealthServicer, grace_seconds: float) -> None:
    """Report NOT_SERVING (so balancers and watchers drain) then stop, letting rpcs finish."""
    await health.enter_graceful_shutdown()
    await server.stop(grace_seconds)


async def serve_forever(
    config: ServerConfig,
    registrations: Sequence[ServiceRegistration],
    port_file: Path | None,
    *,
    background: Sequence[BackgroundTask] = (),
    metrics_port_file: Path | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT or until a background task fails, then stop gracefully.

    The bound port is written to `port_file` (atomically) only once the server is
    serving, so a reader that sees the file can connect at once; the file is removed
    on the way out. `metrics_port_file` likewise gets the /metrics port (when
    `config.metrics_port` is set), written before `port_file`, so a reader waiting for
    `port_file` finds both. A background task that raises stops the server and re-raises.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    try:
        await _serve_until_stopped(config, registrations, (port_file, metrics_port_file), background, stopping)
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def _serve_until_stopped(
    config: ServerConfig,
    registrations: Sequence[ServiceRegistration],
    port_files: tuple[Path | None, Path | None],
    background: Sequence[BackgroundTask],
    stopping: asyncio.Event,
) -> None:
    port_file, metrics_port_file = port_files
    running = await start_server(config, registrations)
    tasks = [asyncio.create_task(task(stopping), name=f"background-{i}") for i, task in enumerate(background)]
    written = [
        (path, port)
        for path, port in ((metrics_port_file, running.metrics_port), (port_file, running.port))
        if path is not None and port is not None
    ]
    try:
        for path, port in written:
            write_port_file(path, port)
        failed = await _wait_for_stop(stopping, tasks)
    finally:
        stopping.set()
        logger.info("%s stopping (grace %.1f s)", config.service_name, config.grace_seconds)
        await running.stop()
        await _finish_tasks(tasks, config.grace_seconds)
        for path, _ in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    if failed is not None:
        raise failed


def write_port_file(path: Path, port: int) -> None:
    """Write `port` to `path` so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, f"{port}\n".encode("ascii"))


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    try:
        if config.tls is not None:
            port = server.add_secure_port(config.address, server_credentials(config.tls))
        else:
            port = server.add_insecure_port(config.address)
    except RuntimeError as exc:
        raise Unavailable(f"cannot listen on {config.address}: {exc}") from exc
    if port == 0:
        raise Unavailable(f"cannot listen on {config.address}")
    return int(port)


async def _wait_for_stop(stopping: asyncio.Event, tasks: list[asyncio.Task[None]]) -> BaseException | None:
    """Block until asked to stop; return the error of a background task that failed first."""
    stop_waiter = asyncio.create_task(stopping.wait())
    try:
        pending: set[asyncio.Future[Any]] = {stop_waiter, *tasks}
        while not stopping.is_set():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_waiter and not task.cancelled() and task.exception() is not None:
                    logger.error("a background task failed; stopping", exc_info=task.exception())
                    return task.exception()
            if not pending - {stop_waiter}:
                # Every background task finished cleanly: keep serving rpcs.
                pending = {stop_waiter}
        return None
    finally:
        stop_waiter.cancel()


async def _finish_tasks(tasks: list[asyncio.Task[None]], grace_seconds: float) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
