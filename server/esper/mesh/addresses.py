"""mesh.json: where every server of a local mesh listens.

One key per subsystem whose value is its gRPC `host:port`, or an object holding it
under "grpc" (beside it, for example, its "pid" or its Prometheus "metrics"
`host:port`, optional), plus "nats" whose value is the NATS URL or an object
holding it under "url", and "pki" saying where the mesh's trust material is: the
CA every server's certificate chains to and the operator identity the `esper`
commands present ("ca", "operator_cert", "operator_key"; absent on an `--insecure`
mesh), the trusted kernel signers and the bus key. `esper up` writes the file,
`esper run --mesh`, `esper status` and `esper down` read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.errors import FailedPrecondition, InvalidArgument
from esper.fsutil import atomic_write
from esper.trust.identity import TlsFiles, TlsIdentity

MESH_FILE = "mesh.json"
NATS = "nats"
PKI = "pki"
_PKI_FILES = ("ca", "operator_cert", "operator_key", "kernel_signers", "bus_key")
# Every gRPC server of a full mesh, in start order (each only needs those before it).
SUBSYSTEMS = ("urza", "tezzeret", "urabrask", "karn", "tamiyo", "simic", "nissa", "tolaria")


@dataclass(frozen=True)
class MeshAddresses:
    """The addresses of one mesh: gRPC `host:port` by subsystem, the NATS URL, process ids, and
    the `host:port` of each server's Prometheus /metrics (for those that list one)."""

    grpc: Mapping[str, str] = field(default_factory=dict)
    nats_url: str = ""
    pids: Mapping[str, int] = field(default_factory=dict)
    metrics: Mapping[str, str] = field(default_factory=dict)
    pki: MeshPki | None = None

    def address(self, name: str) -> str:
        """The gRPC address of `name`; FailedPrecondition if this mesh has no such server."""
        found = self.grpc.get(name)
        if not found:
            raise FailedPrecondition(f"the mesh has no {name} server (known: {', '.join(sorted(self.grpc)) or 'none'})")
        return found

    def nats(self) -> str:
        if not self.nats_url:
            raise FailedPrecondition("the mesh has no NATS server")
        return self.nats_url

    def operator_tls(self) -> TlsIdentity | None:
        """The operator identity `esper` commands present to this mesh; None for a plaintext mesh."""
        pki = self.pki
        if pki is None or pki.ca is None:
            return None
        if pki.operator_cert is None or pki.operator_key is None:
            raise FailedPrecondition("the mesh's pki names a CA but no operator_cert and operator_key")
        try:
            return TlsFiles(ca=pki.ca, cert=pki.operator_cert, key=pki.operator_key).read()
        except ValueError as exc:
            raise FailedPrecondition(f"the mesh's operator identity: {exc}") from None


@dataclass(frozen=True)
class MeshPki:
    """Where a mesh's trust material lives (absolute paths; None where the mesh has none)."""

    ca: Path | None = None
    operator_cert: Path | None = None
    operator_key: Path | None = None
    kernel_signers: Path | None = None
    bus_key: Path | None = None

    @property
    def tls(self) -> bool:
        """Whether the mesh's servers speak mTLS (an `--insecure` mesh has no CA)."""
        return self.ca is not None


def load_mesh(path: str | Path) -> MeshAddresses:
    """Read a mesh file; InvalidArgument naming the file (and key) when it is missing or malformed."""
    file = Path(path).expanduser()
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidArgument.for_field("mesh", f"cannot read {str(file)!r}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidArgument.for_field("mesh", f"{str(file)!r} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidArgument.for_field("mesh", f"{str(file)!r}: expected an object of addresses")
    return addresses_from_document(document, str(file))


def addresses_from_document(document: Mapping[str, Any], source: str = "mesh") -> MeshAddresses:
    grpc: dict[str, str] = {}
    pids: dict[str, int] = {}
    metrics: dict[str, str] = {}
    nats_url = ""
    pki = None
    for name, value in document.items():
        if name == PKI:
            pki = _pki(value, source)
            continue
        inner = "url" if name == NATS else "grpc"
        address, pid = _entry(value, inner, f"{source}: {name}")
        if name == NATS:
            nats_url = address
        else:
            grpc[name] = address
        if pid is not None:
            pids[name] = pid
        metrics_address = _metrics_address(value, f"{source}: {name}")
        if metrics_address is not None:
            metrics[name] = metrics_address
    return MeshAddresses(grpc=grpc, nats_url=nats_url, pids=pids, metrics=metrics, pki=pki)


def _pki(value: Any, source: str) -> MeshPki:
    base = Path(source).expanduser().parent if source != "mesh" else Path.cwd()
    if not isinstance(value, dict) or set(value) - set(_PKI_FILES):
        raise InvalidArgument.for_field("mesh", f"{source}: pki must be an object of {', '.join(_PKI_FILES)}")
    paths: dict[str, Path] = {}
    for key, path in value.items():
        if not isinstance(path, str) or not path:
            raise InvalidArgument.for_field("mesh", f"{source}: pki.{key} must be a file path")
        paths[key] = base / Path(path).expanduser()
    return MeshPki(**paths)


def write_mesh(path: Path, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _metrics_address(value: Any, where: str) -> str | None:
    """The optional "metrics" host:port of an object entry (older files have none)."""
    if not isinstance(value, dict) or value.get("metrics") is None:
        return None
    address = value["metrics"]
    if not isinstance(address, str) or not address:
        raise InvalidArgument.for_field("mesh", f"{where}: metrics must be a host:port, got {address!r}")
    return address


def _entry(value: Any, inner: str, where: str) -> tuple[str, int | None]:
    address: Any
    pid: Any = None
    if isinstance(value, str):
        address = value
    elif isinstance(value, dict):
        address, pid = value.get(inner), value.get("pid")
        if pid is not None and (type(pid) is not int or pid <= 0):
            raise InvalidArgument.for_field("mesh", f"{where}: pid must be a positive integer, got {pid!r}")
    else:
        raise InvalidArgument.for_field("mesh", f"{where}: expected an address or an object, got {value!r}")
    if not isinstance(address, str) or not address:
        raise InvalidArgument.for_field("mesh", f"{where}: no {inner} address")
    return address, pid
