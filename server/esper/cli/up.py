"""`esper up / status / down --dir DIR`: the local mesh, NATS JetStream and every server on loopback.

`up` starts `nats-server -js` and every `esper serve NAME` on free loopback ports,
each speaking mTLS with its own identity from DIR/pki (created on the first `up`;
`--insecure` for plaintext), writes DIR/mesh.json with every address and where the
operator identity is once each health check is SERVING, and returns (the servers
keep running). `status` shows each one's health. `down`
stops them all by process id and checks that none is left.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from esper.cli.common import add_json_flag, print_json
from esper.errors import UsageError
from esper.mesh.addresses import SUBSYSTEMS

DEFAULT_DIR = "esper-mesh"


def _mesh(args: argparse.Namespace) -> Any:
    from esper.cli.local_mesh import LocalMesh

    return LocalMesh(Path(args.dir))


def _up(args: argparse.Namespace) -> int:
    from esper.cli.local_mesh import MeshStartFailed

    config = None
    if args.config:
        config = Path(args.config).expanduser().resolve()
        if not config.is_file():
            raise UsageError(f"--config: no such file {str(config)!r}")
        from esper.config import load_config

        load_config(config)  # refuse a bad config before anything starts
    mesh = _mesh(args)
    started = time.monotonic()
    quiet = args.json

    def progress(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr)

    try:
        document = mesh.start(timeout=args.timeout, config=config, progress=progress, insecure=args.insecure)
    except MeshStartFailed as exc:
        print(f"esper up: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(document)
    else:
        print(f"mesh up in {time.monotonic() - started:.1f} s: {mesh.mesh_file}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from esper.cli.local_mesh import health, process_alive
    from esper.mesh.addresses import load_mesh

    mesh = _mesh(args)
    if not mesh.mesh_file.exists():
        raise UsageError(f"no {mesh.mesh_file}: start a mesh with `esper up --dir {args.dir}`")
    addresses = load_mesh(mesh.mesh_file)
    tls = addresses.operator_tls()
    rows: dict[str, dict[str, Any]] = {}
    for name, address in addresses.grpc.items():
        rows[name] = {"address": address, "health": health(address, timeout=args.timeout, tls=tls)}
    if addresses.nats_url:
        rows["nats"] = {"address": addresses.nats_url, "health": _nats_health(addresses.nats_url, args.timeout)}
    for name, row in rows.items():
        pid = addresses.pids.get(name)
        row["pid"] = pid
        row["running"] = pid is not None and process_alive(pid)
        if name in addresses.metrics:
            row["metrics"] = addresses.metrics[name]
    healthy = all(row["health"] == "SERVING" for row in rows.values())
    if args.json:
        print_json({"healthy": healthy, "servers": rows})
    else:
        for name, row in rows.items():
            state = "" if row["running"] else "  (process gone)"
            metrics = f"  metrics {row['metrics']}" if "metrics" in row else ""
            print(f"{name:<9} {row['health']:<12} {row['address']:<24} pid {row['pid']}{state}{metrics}")
    return 0 if healthy else 1


def _nats_health(url: str, timeout: float) -> str:
    """SERVING when the NATS port accepts connections and greets like a NATS server."""
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            greeting = sock.recv(8)
    except (OSError, ValueError):
        return "UNREACHABLE"
    return "SERVING" if greeting.startswith(b"INFO") else "UNKNOWN"


def _restart(args: argparse.Namespace) -> int:
    from esper.cli.local_mesh import MeshStartFailed

    mesh = _mesh(args)
    quiet = args.json
    try:
        document = mesh.restart(
            args.name, timeout=args.timeout, progress=lambda line: None if quiet else print(line, file=sys.stderr)
        )
    except MeshStartFailed as exc:
        print(f"esper restart: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(document[args.name])
    else:
        print(f"{args.name} restarted: {document[args.name]['grpc']}")
    return 0


def _down(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    if not mesh.known_pids():
        print(f"no mesh in {mesh.directory}: nothing to stop", file=sys.stderr)
        return 0
    alive = mesh.stop(timeout=args.timeout, progress=lambda line: print(line, file=sys.stderr))
    if alive:
        print(f"esper down: still running: {', '.join(alive)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"stopped": True}))
    else:
        print(f"mesh in {mesh.directory} stopped")
    return 0


def _health(args: argparse.Namespace) -> int:
    """Exit 0 when the server at ADDRESS is SERVING (asked over mTLS with the --tls-* identity)."""
    from esper.cli.local_mesh import health
    from esper.trust.identity import TlsFiles

    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if any(given) and not all(given):
        raise UsageError("--tls-cert, --tls-key and --tls-ca go together")
    tls = None
    if all(given):
        try:
            tls = TlsFiles(ca=Path(args.tls_ca), cert=Path(args.tls_cert), key=Path(args.tls_key)).read()
        except ValueError as exc:
            raise UsageError(f"--tls-*: {exc}") from None
    state = health(args.address, timeout=args.timeout, tls=tls)
    print(state)
    return 0 if state == "SERVING" else 1


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up",
        help="start the local mesh (NATS JetStream + every server)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--dir", default=DEFAULT_DIR, help=f"the mesh's folder (default: ./{DEFAULT_DIR})")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every server (default: 180)")
    up.add_argument("--config", help="Esper YAML whose tamiyo section the mesh's Tamiyo uses")
    up.add_argument(
        "--insecure",
        action="store_true",
        help="start every server plaintext, with no certificates and no authorization (development only)",
    )
    add_json_flag(up)
    up.set_defaults(handler=_up)
    status = subparsers.add_parser("status", help="health of every server of the local mesh")
    status.add_argument("--dir", default=DEFAULT_DIR, help=f"the mesh's folder (default: ./{DEFAULT_DIR})")
    status.add_argument("--timeout", type=float, default=2.0, help="seconds per health check (default: 2)")
    add_json_flag(status)
    status.set_defaults(handler=_status)
    restart = subparsers.add_parser(
        "restart",
        help="stop one server of the local mesh and start it again on the same ports",
        description="Stop one server (if it runs) and start it again with the same flags and ports, "
        "so its clients and Nissa's scrapes find it where they left it.",
    )
    restart.add_argument("name", choices=SUBSYSTEMS, help="the server to restart")
    restart.add_argument("--dir", default=DEFAULT_DIR, help=f"the mesh's folder (default: ./{DEFAULT_DIR})")
    restart.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to stop it and to see it serving again (default: 60)"
    )
    add_json_flag(restart)
    restart.set_defaults(handler=_restart)
    check = subparsers.add_parser(
        "health",
        help="one server's grpc.health.v1 status (exit 1 unless SERVING): container and probe checks",
    )
    check.add_argument("address", metavar="HOST:PORT")
    check.add_argument("--tls-cert", metavar="FILE", help="the identity to ask as (a mesh certificate)")
    check.add_argument("--tls-key", metavar="FILE")
    check.add_argument("--tls-ca", metavar="FILE")
    check.add_argument("--timeout", type=float, default=2.0, help="seconds (default: 2)")
    check.set_defaults(handler=_health)
    down = subparsers.add_parser("down", help="stop every process of the local mesh, by pid")
    down.add_argument("--dir", default=DEFAULT_DIR, help=f"the mesh's folder (default: ./{DEFAULT_DIR})")
    down.add_argument(
        "--timeout", type=float, default=30.0, help="seconds each tier gets to stop before SIGKILL (default: 30)"
    )
    add_json_flag(down)
    down.set_defaults(handler=_down)
