"""Processes of a local mesh as seen from outside: alive, healthy, gone, and what they logged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from esper.mesh.tls import secure_channel
from esper.trust.identity import TlsIdentity

POLL_SECONDS = 0.1
_LOG_TAIL_LINES = 30


def health(address: str, *, timeout: float, tls: TlsIdentity | None = None) -> str:
    """grpc.health.v1 status of the whole server ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE".

    With `tls`, asked over mTLS as that identity (any identity of the mesh may ask).
    """
    with secure_channel(address, tls) if tls is not None else grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def wait_gone(pids: dict[str, int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        alive = {name: pid for name, pid in alive.items() if process_alive(pid)}
        if alive:
            time.sleep(POLL_SECONDS)
    return alive
