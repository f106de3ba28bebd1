"""What mTLS and per-call authorization cost: the same calls over plaintext and over mTLS, side by side.

- unary: one KarnService.GetTemplate round trip on loopback (a small request and answer), p50/p95;
  target: mTLS within 1.3x of plaintext.
- epoch-end hook: Tolaria's hook (state packet -> Tamiyo over gRPC -> Kasmina) on a wrapped digits
  model, Tamiyo served plaintext vs mTLS with authorization; target: still <= 10 ms (budget 18 ms).

The two variants are measured in alternating rounds in one process, so drift on a shared machine
lands on both. Connections are made once (a TLS handshake per mesh client, not per call). Prints a
markdown table; never part of the tests.

    .venv/bin/python bench/tls_bench.py [--calls N] [--boundaries N] [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mesh_bench import _hook_samples

from esper.clients import KarnClient, TamiyoClient
from esper.clients.base import ClientConfig
from esper.karn.config import KarnConfig
from esper.karn.service import KarnService
from esper.leyline.v1 import karn_pb2
from esper.leyline.v1.services import KARN_SERVICE, TAMIYO_SERVICE
from esper.mesh.config import ServerConfig
from esper.mesh.hosting import host
from esper.mesh.server import ServiceRegistration
from esper.mesh.threaded import ServerThread
from esper.tamiyo import TamiyoController
from esper.tamiyo.config import TamiyoConfig
from esper.trust.identity import TlsIdentity, identity_files
from esper.trust.pki import ensure_identities
from esper.urza.config import UrzaConfig
from esper.urza.hub import UrzaHub


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def serve(registrations: list[ServiceRegistration], tls: TlsIdentity | None) -> ServerThread:
    return ServerThread(registrations, ServerConfig(service_name="bench", grace_seconds=0.0, tls=tls))


def unary_samples(client: KarnClient, calls: int) -> list[float]:
    request = karn_pb2.GetTemplateRequest(template_id="mlp_gelu_e1")
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        client.get_template(request)
        samples.append(time.perf_counter() - start)
    return samples


def alternate(measure: Callable[[Any], list[float]], subjects: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name, subject in subjects.items():
            samples[name].extend(measure(subject))
    return samples


def row(measure: str, samples: dict[str, list[float]], fraction: float, target: str) -> str:
    tls, plain = percentile(samples["mtls"], fraction) * 1e3, percentile(samples["plaintext"], fraction) * 1e3
    return f"| {measure} | {tls:.3f} ms | {plain:.3f} ms | {tls / plain:.2f}x | {target} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="unary calls per round and variant")
    parser.add_argument("--boundaries", type=int, default=120, help="hook boundaries per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp) / "pki"
        ensure_identities(pki, ["karn", "tamiyo", "tolaria", "operator"])

        def identity(name: str) -> TlsIdentity:
            return identity_files(pki, name).read()

        karn = KarnService.default(KarnConfig())
        servers = {
            "plaintext": serve([host(KARN_SERVICE.bind(karn))], None),
            "mtls": serve([host(KARN_SERVICE.bind(karn))], identity("karn")),
        }
        clients = {
            "plaintext": KarnClient(ClientConfig(address=servers["plaintext"].address)),
            "mtls": KarnClient(ClientConfig(address=servers["mtls"].address, tls=identity("operator"))),
        }
        for client in clients.values():
            unary_samples(client, 200)  # connect, warm up
        unary = alternate(lambda client: unary_samples(client, args.calls), clients, args.rounds)
        for client in clients.values():
            client.close()
        for server in servers.values():
            server.stop()

        hub = UrzaHub.open(UrzaConfig(data_dir=str(Path(tmp) / "urza")))
        config = TamiyoConfig(warmup_epochs=0, patience=1, min_delta=1.0)
        tls = {"plaintext": (None, None), "mtls": (identity("tamiyo"), identity("tolaria"))}

        def hook_round(variant: str) -> list[float]:
            # A controller refuses an epoch it has stepped: every round gets a fresh Tamiyo.
            server_tls, client_tls = tls[variant]
            server = serve([host(TAMIYO_SERVICE.bind(TamiyoController(None, config, kernels=hub)))], server_tls)
            client = TamiyoClient(ClientConfig(address=server.address, deadline_seconds=1.0, tls=client_tls))
            try:
                return _hook_samples(client, args.boundaries + 20)
            finally:
                client.close()
                server.stop()

        hook = alternate(hook_round, {name: name for name in tls}, args.rounds)
        hub.close()
    print("| measure | mTLS | plaintext | ratio | target |")
    print("|---|---:|---:|---:|---|")
    print(row("unary call p50 (Karn GetTemplate)", unary, 0.5, "<= 1.3x"))
    print(row("unary call p95 (Karn GetTemplate)", unary, 0.95, "-"))
    print(row("epoch-end hook p50, Tamiyo over gRPC", hook, 0.5, "<= 10 ms"))
    print(row("epoch-end hook p95, Tamiyo over gRPC", hook, 0.95, "budget 18 ms"))


if __name__ == "__main__":
    main()
