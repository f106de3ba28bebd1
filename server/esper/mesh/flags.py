"""Command-line flags every `esper serve NAME` shares, and argparse value types built on esper.checks.

A bad value is an argparse error naming the flag (argparse adds the flag's name to
the check's description), so `--port 70000` reads "argument --port: must be in
[0, 65535], got 70000".
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from esper import checks
from esper.errors import InvalidArgument, UsageError
from esper.mesh.config import ServerConfig
from esper.trust.identity import TlsFiles, TlsIdentity

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")

N = TypeVar("N", int, float)


def _typed(parse: Callable[[str], N], what: str, check: Callable[[str, N], None]) -> Callable[[str], N]:
    def convert(text: str) -> N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        try:
            check("", value)
        except InvalidArgument as error:
            raise argparse.ArgumentTypeError(error.violations[0].description) from None
        return value

    return convert


def _port_check(field: str, value: int) -> None:
    checks.in_range(field, value, 0, 65535)


port = _typed(int, "an integer", _port_check)
positive_int = _typed(int, "an integer", checks.positive)
positive_float = _typed(float, "a number", checks.positive)
non_negative_float = _typed(float, "a number", checks.non_negative)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the server listens, its port files, its /metrics endpoint and its stop grace."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port, default=0, help="port to listen on (default 0: a free one)")
    parser.add_argument(
        "--port-file",
        type=Path,
        default=None,
        help="write the bound port here once serving (atomically); removed on exit",
    )
    metrics = parser.add_mutually_exclusive_group()
    metrics.add_argument(
        "--metrics-port",
        type=port,
        default=0,
        help="port of the Prometheus /metrics endpoint, on --host (default 0: a free one)",
    )
    metrics.add_argument("--no-metrics", action="store_true", help="serve no /metrics endpoint")
    parser.add_argument(
        "--metrics-port-file",
        type=Path,
        default=None,
        help="write the bound /metrics port here once serving (atomically, before --port-file); removed on exit",
    )
    parser.add_argument(
        "--grace-seconds",
        type=non_negative_float,
        default=5.0,
        help="time in-flight rpcs get to finish on stop (default: 5)",
    )
    parser.add_argument(
        "--max-concurrent-rpcs",
        type=positive_int,
        default=256,
        help="calls in flight (streams included) past which new ones get RESOURCE_EXHAUSTED (default: 256)",
    )
    tls = parser.add_argument_group(
        "mTLS",
        "With all three, the server speaks mTLS only, requires a client certificate of that CA and "
        "authorizes every call by its caller's role; its own calls to other servers use the same identity. "
        "Without them it serves plaintext, which a non-loopback --host allows only with --insecure.",
    )
    tls.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="this server's certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key (PEM, owner-only)")
    tls.add_argument("--tls-ca", type=Path, default=None, metavar="FILE", help="the mesh's CA certificate (PEM)")
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="serve plaintext with no authorization on any --host (development only)",
    )


def server_config(name: str, args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig the shared flags ask for."""
    return ServerConfig(
        service_name=name,
        host=args.host,
        port=args.port,
        grace_seconds=args.grace_seconds,
        metrics_port=None if args.no_metrics else args.metrics_port,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        tls=serve_tls(args),
    )


def serve_tls(args: argparse.Namespace) -> TlsIdentity | None:
    """The identity --tls-cert/--tls-key/--tls-ca name, or None for plaintext (refused off loopback
    without --insecure)."""
    given = [flag for flag in ("tls_cert", "tls_key", "tls_ca") if getattr(args, flag) is not None]
    if given and len(given) < 3:
        raise UsageError("--tls-cert, --tls-key and --tls-ca go together")
    if given:
        if args.insecure:
            raise UsageError("--insecure: the --tls-* flags make the server speak mTLS; drop one or the other")
        try:
            return TlsFiles(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key).read()
        except ValueError as exc:
            raise UsageError(f"--tls-*: {exc}") from None
    if not args.insecure and args.host not in LOOPBACK:
        raise UsageError(
            f"--host {args.host}: a server reachable from elsewhere speaks mTLS (--tls-cert/--tls-key/--tls-ca); "
            "--insecure serves plaintext anyway"
        )
    if args.insecure:
        logger.warning("serving plaintext with no authorization (--insecure): for development only")
    return None
