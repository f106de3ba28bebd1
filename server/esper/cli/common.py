"""Small pieces shared by the CLI command modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from esper.errors import UsageError


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def parse_shape(text: str, flag: str) -> tuple[int, ...]:
    """`"16,8,8"` -> (16, 8, 8); a bad value is a usage error naming the flag."""
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated positive integers, got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"{flag}: expected comma-separated positive integers, got {text!r}")
    return dims


@contextmanager
def urza_client(args: argparse.Namespace) -> Iterator[Any]:
    """An Urza client: `--urza` (plaintext), or the Urza of `--mesh` as the mesh's operator identity."""
    from esper.clients import UrzaClient
    from esper.clients.base import ClientConfig
    from esper.mesh.addresses import load_mesh

    address, tls = args.urza, None
    if getattr(args, "mesh", None):
        mesh = load_mesh(args.mesh)
        address, tls = args.urza or mesh.address("urza"), mesh.operator_tls()
    if not address:
        raise UsageError("say which Urza: --urza HOST:PORT or --mesh mesh.json")
    client = UrzaClient(ClientConfig(address=address, deadline_seconds=args.timeout, tls=tls))
    try:
        yield client
    finally:
        client.close()


@contextmanager
def process_tracing(service_name: str) -> Iterator[Any]:
    """Tracing for this process from the OTEL_* environment (off without an endpoint), flushed on the way out.

    A bad variable is an InvalidArgument naming it.
    """
    import os

    from esper.observability.tracing import TracingConfig, setup_tracing

    tracing = setup_tracing(TracingConfig.from_environ(service_name, os.environ))
    try:
        yield tracing
    finally:
        tracing.shutdown()
