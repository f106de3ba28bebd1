"""`esper pki init --dir DIR`: the mesh's PKI for a deployment (what `esper up` makes for itself).

A CA, one identity per server plus `operator` (and `nats` for the NATS server), the bus
key, and the compile worker's kernel signing key with its trust file, written to DIR
(keys owner-only; existing files are kept). Each server's certificate is valid for
loopback and its own service name (and `NAME.<namespace>.svc[.cluster.local]` with
`--namespace`), so clients reach `urza:50051` by name. Mount each identity into its
server as a secret; see docs/deploy.md and docs/security.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from esper.cli.common import add_json_flag, print_json

SERVERS = ("urza", "tezzeret", "urabrask", "karn", "tamiyo", "simic", "nissa", "tolaria")


def _init(args: argparse.Namespace) -> int:
    from esper.trust.identity import LOOPBACK_HOSTS, OPERATOR
    from esper.trust.pki import ensure_bus_key, ensure_identities, ensure_kernel_signing

    directory = Path(args.dir).expanduser()
    made: dict[str, Any] = {}
    for name in (*SERVERS, "nats", "otel-collector", OPERATOR):
        hosts = [*LOOPBACK_HOSTS, *args.host]
        if name != OPERATOR:
            hosts.append(name)
            if args.namespace:
                hosts += [f"{name}.{args.namespace}.svc", f"{name}.{args.namespace}.svc.cluster.local"]
        files = ensure_identities(directory, [name], hosts=hosts)[name]
        made[name] = {"cert": str(files.cert), "key": str(files.key)}
    signing, signers = ensure_kernel_signing(directory)
    document = {
        "ca": str(directory / "ca.pem"),
        "identities": made,
        "bus_key": str(ensure_bus_key(directory)),
        "kernel_signing_key": str(signing),
        "kernel_signers": str(signers),
    }
    if args.json:
        print_json(document)
    else:
        print(f"PKI in {directory}: CA, {len(made)} identities, bus key, kernel signing key and trust file")
    return 0


def register(subparsers: Any) -> None:
    pki = subparsers.add_parser("pki", help="the mesh's certificates and keys, for deployments")
    actions = pki.add_subparsers(dest="pki_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create the CA, identities and keys (keeps what exists)", description=__doc__
    )
    init.add_argument("--dir", required=True, help="where to write them (keep it out of version control)")
    init.add_argument("--namespace", default="", help="Kubernetes namespace: certificates also name NAME.NS.svc")
    init.add_argument("--host", action="append", default=[], help="one more name every certificate is valid for")
    add_json_flag(init)
    init.set_defaults(handler=_init)
