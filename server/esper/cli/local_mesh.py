"""The processes of a local mesh: NATS JetStream and every `esper serve NAME`, started and stopped by pid.

Everything lives under one folder: `mesh.json` (the addresses, written once every
server is SERVING), `pids.json` (every process as soon as it is started, so a
half-started mesh can still be stopped), `logs/NAME.log`, `run/NAME.port` and
`run/NAME.metrics.port` (its Prometheus /metrics port), `pki/` (a CA and one mTLS
identity per server plus `operator`, the bus key every server signs and checks Oona
envelopes with, the compile worker's kernel signing key and the trust file of the
servers that load kernels; see esper.trust.pki), and one working folder per server.
Every server speaks mTLS and authorizes each call by its caller's role; `--insecure`
starts them plaintext, for development. Servers start in tiers: NATS, then Urza, then the
servers that only need Urza and NATS (in parallel), then Tolaria. They stop in the
reverse order, so Tolaria cancels its runs while its collaborators still answer.
Every process's command line names the folder, which is how `esper down` makes
sure a pid is still one of this mesh's before it signals it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.cli.processes import POLL_SECONDS, command_line, health, log_tail, process_alive, wait_gone
from esper.mesh.addresses import MESH_FILE, NATS, PKI, write_mesh
from esper.trust.identity import CA_CERT, OPERATOR, TlsIdentity, identity_files
from esper.trust.pki import (
    BUS_KEY,
    KERNEL_SIGNERS,
    KERNEL_SIGNING_KEY,
    ensure_bus_key,
    ensure_identities,
    ensure_kernel_signing,
)

PIDS_FILE = "pids.json"
PKI_DIR = "pki"
BUS_KEY_ID = "mesh"
NATS_SERVER = Path(sys.executable).parent / "nats-server"
NISSA_ALERT_INTERVAL_SECONDS = 2.0
_PER_SERVER_OTEL = frozenset(
    {
        "OTEL_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_INSECURE",
    }
)


class MeshStartFailed(Exception):
    """A process of the mesh did not come up; the message names it and holds its log's tail."""


@dataclass(frozen=True)
class LaunchContext:
    """What a server's flags are made of: the mesh folder, the addresses so far, the config given to `up`."""

    directory: Path
    grpc: dict[str, str]
    nats_url: str
    config: Path | None
    forward: str = ""
    tls: bool = True

    def work(self, name: str, *parts: str) -> str:
        return str(self.directory.joinpath(name, *parts))

    def run_file(self, name: str) -> str:
        return str(self.directory / "run" / name)

    def pki(self, name: str) -> str:
        return str(self.directory / PKI_DIR / name)

    def bus(self, name: str) -> list[str]:
        """`--nats` and the signing flags: every envelope signed with the mesh's bus key, checked on receipt."""
        return [
            "--nats",
            self.nats_url,
            "--bus-secret-file",
            self.pki(BUS_KEY),
            "--bus-key-id",
            BUS_KEY_ID,
            "--bus-state-dir",
            self.work(name, "oona"),
        ]

    def trusted_signers(self) -> list[str]:
        return ["--trusted-signers", self.pki(KERNEL_SIGNERS)]

    def identity(self, name: str) -> list[str]:
        """The server's mTLS flags (none on an --insecure mesh)."""
        if not self.tls:
            return []
        return [
            "--tls-cert",
            self.pki(f"{name}.pem"),
            "--tls-key",
            self.pki(f"{name}.key"),
            "--tls-ca",
            self.pki(CA_CERT),
        ]


@dataclass(frozen=True)
class ServerSpec:
    """One `esper serve NAME` of the mesh: its start tier and its own flags."""

    name: str
    tier: int
    flags: Callable[[LaunchContext], list[str]]


def _simic_flags(ctx: LaunchContext) -> list[str]:
    flags = [*ctx.bus("simic"), "--data-dir", ctx.work("simic", "data")]
    if ctx.config is None:
        return flags
    from esper.config import load_config

    # Simic's episodes are embedded runs: they take their kernels from the asset cache the config names.
    return [*flags, "--assets-dir", load_config(ctx.config).assets.data_dir]


def _tamiyo_flags(ctx: LaunchContext) -> list[str]:
    flags = ["--urza", ctx.grpc["urza"], "--simic", ctx.grpc["simic"], *ctx.bus("tamiyo")]
    return [*flags, "--config", str(ctx.config)] if ctx.config is not None else flags


def _nissa_flags(ctx: LaunchContext) -> list[str]:
    """Nissa stores spans beside the mesh, follows telemetry on NATS and scrapes every server mesh.json lists."""
    flags = [
        "--db",
        ctx.work("nissa", "spans.db"),
        *ctx.bus("nissa"),
        "--mesh",
        str(ctx.directory / MESH_FILE),
        "--alert-interval",
        str(NISSA_ALERT_INTERVAL_SECONDS),
        "--web-port-file",
        ctx.run_file("nissa.web.port"),
    ]
    return [*flags, "--forward", ctx.forward] if ctx.forward else flags


def server_environment(name: str, ctx: LaunchContext, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with OTEL_* set so the server's spans go to the mesh's Nissa, under its own service name.

    Nissa itself exports nothing (it stores what it receives; an endpoint given to `esper up`
    is where Nissa forwards to instead).
    """
    env = {key: value for key, value in base.items() if key not in _PER_SERVER_OTEL}
    env["OTEL_SERVICE_NAME"] = name
    if name == "nissa":
        env["OTEL_TRACES_EXPORTER"] = "none"
    elif "nissa" in ctx.grpc:
        env.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        if ctx.tls:
            # Spans go to Nissa over mTLS as the server's own identity.
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"https://{ctx.grpc['nissa']}"
            env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = ctx.pki(CA_CERT)
            env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] = ctx.pki(f"{name}.pem")
            env["OTEL_EXPORTER_OTLP_CLIENT_KEY"] = ctx.pki(f"{name}.key")
        else:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{ctx.grpc['nissa']}"
    return env


# Every server of the mesh; a new subsystem joins with one line.
SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec("nissa", 1, _nissa_flags),
    ServerSpec("urza", 2, lambda ctx: ["--data-dir", ctx.work("urza", "data"), *ctx.trusted_signers()]),
    ServerSpec(
        "tezzeret",
        3,
        lambda ctx: [
            "--urza",
            ctx.grpc["urza"],
            "--wal-dir",
            ctx.work("tezzeret", "wal"),
            "--work-dir",
            ctx.work("tezzeret", "work"),
            "--signing-key",
            ctx.pki(KERNEL_SIGNING_KEY),
        ],
    ),
    ServerSpec("urabrask", 3, lambda ctx: ["--urza", ctx.grpc["urza"], *ctx.trusted_signers()]),
    ServerSpec("karn", 3, lambda ctx: ctx.bus("karn")),
    ServerSpec("tamiyo", 3, _tamiyo_flags),
    # Before Tamiyo, which fetches Simic's published policies from it.
    ServerSpec("simic", 2, _simic_flags),
    ServerSpec(
        "tolaria",
        4,
        lambda ctx: [
            "--urza",
            ctx.grpc["urza"],
            "--tamiyo",
            ctx.grpc["tamiyo"],
            *ctx.bus("tolaria"),
            *ctx.trusted_signers(),
            "--runs-dir",
            ctx.work("tolaria", "runs"),
            "--data-root",
            ctx.work("tolaria", "data"),
        ],
    ),
)


@dataclass
class Launched:
    """A process this `esper up` started."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port_file: Path | None = None
    address: str = ""
    metrics_port_file: Path | None = None
    metrics: str = ""


class LocalMesh:
    """Start, check and stop the mesh that lives in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser().resolve()
        self.mesh_file = self.directory / MESH_FILE
        self.pids_file = self.directory / PIDS_FILE
        self.logs = self.directory / "logs"
        self.run_dir = self.directory / "run"
        self._operator: TlsIdentity | None = None

    # Start

    def start(
        self,
        *,
        timeout: float,
        config: Path | None = None,
        progress: Callable[[str], None] = print,
        insecure: bool = False,
    ) -> dict[str, Any]:
        """Start everything (mTLS unless `insecure`); returns the mesh.json document. On failure stops
        what it started."""
        live = self.live_pids()
        if live:
            raise MeshStartFailed(
                f"a mesh is already up in {self.directory} (pids {sorted(live.values())}); "
                f"stop it with `esper down --dir {self.directory}`"
            )
        self._clear()
        for folder in (self.logs, self.run_dir, self.directory / "tolaria" / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        self._ensure_keys(tls=not insecure)
        deadline = time.monotonic() + timeout
        launched: list[Launched] = []
        try:
            nats = self._start_nats(deadline)
            launched.append(nats)
            progress(f"nats     {nats.address}  (pid {nats.process.pid})")
            forward = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
                "OTEL_EXPORTER_OTLP_ENDPOINT", ""
            )
            ctx = LaunchContext(self.directory, {}, nats.address, config, forward, tls=not insecure)
            for tier in sorted({spec.tier for spec in SERVERS}):
                started = [self._spawn(spec, ctx) for spec in SERVERS if spec.tier == tier]
                launched.extend(started)
                self._record(launched)
                for server in self._wait_serving(started, deadline):
                    ctx.grpc[server.name] = server.address
                    progress(f"{server.name:<8} {server.address}  metrics {server.metrics}  (pid {server.process.pid})")
            document = self._document(launched, ctx)
            write_mesh(self.mesh_file, document)
            return document
        except BaseException:
            _terminate(reversed(launched))
            self._clear()
            raise

    def _ensure_keys(self, *, tls: bool) -> None:
        """The mesh's keys under DIR/pki, created on the first `up` and reused after."""
        pki = self.directory / PKI_DIR
        if tls:
            ensure_identities(pki, [*(spec.name for spec in SERVERS), OPERATOR])
            self._operator = identity_files(pki, OPERATOR).read()
        else:
            self._operator = None
        ensure_bus_key(pki)
        ensure_kernel_signing(pki)

    def _start_nats(self, deadline: float) -> Launched:
        store, ports = self.directory / NATS, self.run_dir / "nats-ports"
        for folder in (store, ports):
            folder.mkdir(parents=True, exist_ok=True)
        log = self.logs / "nats.log"
        command = [
            str(NATS_SERVER),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            "-1",
            "-sd",
            str(store),
            "--ports_file_dir",
            str(ports),
        ]
        nats = Launched(NATS, _popen(command, log, self.directory), log)
        self._record([nats])
        ports_file = ports / f"{NATS_SERVER.name}_{nats.process.pid}.ports"
        while not ports_file.exists():
            self._check_alive(nats, deadline)
            time.sleep(POLL_SECONDS)
        urls = json.loads(ports_file.read_text(encoding="utf-8")).get("nats") or []
        if not urls:
            raise MeshStartFailed(f"nats-server wrote no client URL to {ports_file}")
        nats.address = str(urls[0])
        return nats

    def _spawn(self, spec: ServerSpec, ctx: LaunchContext, *, ports: tuple[int, int, int] = (0, 0, 0)) -> Launched:
        """Start `esper serve NAME` on `ports` (gRPC, metrics, and web for Nissa; 0 = a free one)."""
        work = self.directory / spec.name
        work.mkdir(parents=True, exist_ok=True)
        port_file = self.run_dir / f"{spec.name}.port"
        metrics_port_file = self.run_dir / f"{spec.name}.metrics.port"
        log = self.logs / f"{spec.name}.log"
        command = [
            sys.executable,
            "-m",
            "esper.cli.main",
            "serve",
            spec.name,
            "--port",
            str(ports[0]),
            "--port-file",
            str(port_file),
            "--metrics-port",
            str(ports[1]),
            "--metrics-port-file",
            str(metrics_port_file),
            *spec.flags(ctx),
            *ctx.identity(spec.name),
        ]
        if spec.name == "nissa":
            command += ["--web-port", str(ports[2])]
        process = _popen(command, log, work, server_environment(spec.name, ctx, os.environ))
        return Launched(spec.name, process, log, port_file, metrics_port_file=metrics_port_file)

    def _wait_serving(self, started: Sequence[Launched], deadline: float) -> list[Launched]:
        waiting = list(started)
        while waiting:
            for server in list(waiting):
                self._check_alive(server, deadline)
                assert server.port_file is not None and server.metrics_port_file is not None
                # The metrics port file is written first, so both exist once the port file does.
                if not (server.port_file.exists() and server.metrics_port_file.exists()):
                    continue
                server.address = f"127.0.0.1:{int(server.port_file.read_text(encoding='ascii'))}"
                server.metrics = f"127.0.0.1:{int(server.metrics_port_file.read_text(encoding='ascii'))}"
                if health(server.address, timeout=1.0, tls=self._operator) == "SERVING":
                    waiting.remove(server)
            time.sleep(POLL_SECONDS)
        return list(started)

    def _check_alive(self, server: Launched, deadline: float) -> None:
        code = server.process.poll()
        if code is not None:
            raise MeshStartFailed(
                f"{server.name} exited with status {code} while starting; {server.log}:\n{log_tail(server.log)}"
            )
        if time.monotonic() > deadline:
            raise MeshStartFailed(f"{server.name} was not serving in time; {server.log}:\n{log_tail(server.log)}")

    def _document(self, launched: Sequence[Launched], ctx: LaunchContext) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for server in launched:
            if server.name == NATS:
                document[NATS] = {"url": server.address, "pid": server.process.pid}
            else:
                document[server.name] = {"grpc": server.address, "metrics": server.metrics, "pid": server.process.pid}
        if ctx.config is not None and "tamiyo" in document:
            document["tamiyo"]["config"] = str(ctx.config)
        document[PKI] = {"bus_key": ctx.pki(BUS_KEY), "kernel_signers": ctx.pki(KERNEL_SIGNERS)}
        if ctx.tls:
            document[PKI].update(
                ca=ctx.pki(CA_CERT), operator_cert=ctx.pki(f"{OPERATOR}.pem"), operator_key=ctx.pki(f"{OPERATOR}.key")
            )
        if "nissa" in document:
            web = Path(ctx.run_file("nissa.web.port"))
            if web.exists():
                document["nissa"]["web"] = f"http://127.0.0.1:{int(web.read_text(encoding='ascii'))}/"
            if ctx.forward:
                document["nissa"]["forward"] = ctx.forward
        return document

    # Restart one server

    def restart(self, name: str, *, timeout: float, progress: Callable[[str], None] = print) -> dict[str, Any]:
        """Stop `name` if it runs, start it again on the same ports with the same flags; returns mesh.json."""
        try:
            document: dict[str, Any] = json.loads(self.mesh_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MeshStartFailed(f"no readable {self.mesh_file}: start a mesh with `esper up` first ({exc})") from None
        spec = next((spec for spec in SERVERS if spec.name == name), None)
        if spec is None or name not in document:
            raise MeshStartFailed(f"the mesh has no server {name!r} (known: {', '.join(s.name for s in SERVERS)})")
        entry = document[name]
        if self._is_ours(entry["pid"]):
            progress(f"stopping {name} (pid {entry['pid']})")
            os.kill(entry["pid"], signal.SIGTERM)
            if wait_gone({name: entry["pid"]}, timeout):
                os.kill(entry["pid"], signal.SIGKILL)
        ctx = _context_of(self.directory, document)
        self._operator = identity_files(self.directory / PKI_DIR, OPERATOR).read() if ctx.tls else None
        ports = (_port_of(entry["grpc"]), _port_of(entry.get("metrics", "")), _port_of(entry.get("web", "")))
        server = self._spawn(spec, ctx, ports=ports)
        self._record([server])
        self._wait_serving([server], time.monotonic() + timeout)
        entry.update(grpc=server.address, metrics=server.metrics, pid=server.process.pid)
        write_mesh(self.mesh_file, document)
        progress(f"{name:<8} {server.address}  metrics {server.metrics}  (pid {server.process.pid})")
        return document

    def _record(self, launched: Sequence[Launched]) -> None:
        known = self._read_pids()
        known.update({server.name: server.process.pid for server in launched})
        write_mesh(self.pids_file, known)

    # Stop

    def stop(self, *, timeout: float, progress: Callable[[str], None] = print) -> list[str]:
        """SIGTERM every process in stop order (SIGKILL after `timeout`); returns the names still alive."""
        pids = self.known_pids()
        for tier in _stop_tiers(pids):
            ours = {name: pid for name, pid in tier.items() if self._is_ours(pid)}
            for name, pid in ours.items():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                progress(f"stopping {name} (pid {pid})")
            stragglers = wait_gone(ours, timeout)
            for name, pid in stragglers.items():
                progress(f"{name} (pid {pid}) did not stop in {timeout:.0f} s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_gone(stragglers, timeout)
        alive = sorted(name for name, pid in pids.items() if self._is_ours(pid))
        if not alive:
            self._clear()
        return alive

    def known_pids(self) -> dict[str, int]:
        """Every pid mesh.json or pids.json names (the latter also covers a half-started mesh)."""
        pids = self._read_pids()
        with contextlib.suppress(OSError, ValueError):
            for name, value in json.loads(self.mesh_file.read_text(encoding="utf-8")).items():
                if isinstance(value, dict) and type(value.get("pid")) is int:
                    pids[name] = value["pid"]
        return pids

    def live_pids(self) -> dict[str, int]:
        return {name: pid for name, pid in self.known_pids().items() if self._is_ours(pid)}

    def _is_ours(self, pid: int) -> bool:
        """Alive, not a zombie, and started for this folder (a reused pid is someone else's)."""
        return process_alive(pid) and str(self.directory) in command_line(pid)

    def _read_pids(self) -> dict[str, int]:
        try:
            data = json.loads(self.pids_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(name): pid for name, pid in data.items() if type(pid) is int} if isinstance(data, dict) else {}

    def _clear(self) -> None:
        for path in (self.mesh_file, self.pids_file):
            path.unlink(missing_ok=True)
        if self.run_dir.is_dir():
            for port_file in self.run_dir.glob("*.port"):
                port_file.unlink(missing_ok=True)


def _context_of(directory: Path, document: Mapping[str, Any]) -> LaunchContext:
    """The launch context a running mesh was started with, read back from its mesh.json."""
    grpc_addresses = {
        name: entry["grpc"]
        for name, entry in document.items()
        if name != PKI and isinstance(entry, dict) and "grpc" in entry
    }
    nats = document.get(NATS, {})
    tamiyo, nissa = document.get("tamiyo", {}), document.get("nissa", {})
    config = Path(tamiyo["config"]) if "config" in tamiyo else None
    tls = "ca" in document.get(PKI, {})
    return LaunchContext(directory, grpc_addresses, nats.get("url", ""), config, nissa.get("forward", ""), tls=tls)


def _port_of(address: str) -> int:
    """The port of "host:port" or "http://host:port/"; 0 (a free one) when there is none."""
    tail = address.rstrip("/").rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _popen(command: list[str], log: Path, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as sink:
        # A session of its own: the servers outlive `esper up` and ignore its terminal's Ctrl-C.
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def _terminate(launched: Iterable[Launched], timeout: float = 15.0) -> None:
    for server in launched:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout)


def _stop_tiers(pids: dict[str, int]) -> list[dict[str, int]]:
    """Stop order grouped: Tolaria, then the servers that need only Urza and NATS, Urza, NATS, then unknowns."""
    tiers = {spec.name: spec.tier for spec in SERVERS} | {NATS: 0}
    groups: dict[int, dict[str, int]] = {}
    for name, pid in pids.items():
        groups.setdefault(tiers.get(name, -1), {})[name] = pid
    return [groups[tier] for tier in sorted(groups, reverse=True) if tier >= 0] + [groups.get(-1, {})]
