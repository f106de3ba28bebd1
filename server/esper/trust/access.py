"""Who may call each rpc, as the contracts declare it (`option (esper.leyline.v1.allowed)`).

Read from the generated descriptors of every `esper.leyline.v1` service, so the
`.proto` is the one place a rule is written. `missing_declarations` is what the
build-time check (`tools/check_rpc_access.py`, part of `make proto-check`) runs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

import esper.leyline.v1 as leyline
from esper.leyline.v1 import access_pb2
from esper.trust.identity import OPERATOR

ANY_CALLER = "*"
# Every identity of the mesh: one per server (Kasmina is served by Tolaria) and the operator's.
IDENTITIES = frozenset({"urza", "tezzeret", "urabrask", "karn", "tamiyo", "simic", "nissa", "tolaria", OPERATOR})


@dataclass(frozen=True)
class AccessRule:
    """The roles one rpc allows; `ANY_CALLER` among them allows every identity of the mesh."""

    method: str  # the gRPC path, "/esper.leyline.v1.UrzaService/ClaimCompileJob"
    roles: frozenset[str]

    def allows(self, identity: str) -> bool:
        return ANY_CALLER in self.roles or identity in self.roles


def leyline_files() -> Iterator[FileDescriptor]:
    """Every generated file of the contracts."""
    for info in pkgutil.iter_modules(leyline.__path__):
        if info.name.endswith("_pb2"):
            module: ModuleType = importlib.import_module(f"{leyline.__name__}.{info.name}")
            yield module.DESCRIPTOR


def leyline_methods() -> Iterator[tuple[str, MethodDescriptor]]:
    """(gRPC path, descriptor) of every rpc of every service of the contracts."""
    for file in leyline_files():
        for service in file.services_by_name.values():
            for method in service.methods:
                yield f"/{service.full_name}/{method.name}", method


# The generated stub types the extension as a plain FieldDescriptor.
_ALLOWED: Any = access_pb2.allowed


def declared_roles(method: MethodDescriptor) -> tuple[str, ...]:
    options = method.GetOptions()
    if not options.HasExtension(_ALLOWED):
        return ()
    return tuple(options.Extensions[_ALLOWED].roles)


def access_rules() -> Mapping[str, AccessRule]:
    """The declared rule of every rpc of the contracts, by gRPC path."""
    return {path: AccessRule(path, frozenset(declared_roles(method))) for path, method in leyline_methods()}


def missing_declarations() -> list[str]:
    """What is wrong with the declarations: an rpc without one, or naming an identity that does not exist."""
    problems = []
    for path, method in leyline_methods():
        roles = declared_roles(method)
        if not roles:
            problems.append(f"{path}: no `option (esper.leyline.v1.allowed) = {{roles: [...]}}`")
        unknown = sorted(set(roles) - IDENTITIES - {ANY_CALLER})
        if unknown:
            problems.append(f"{path}: unknown roles {unknown} (known: {', '.join(sorted(IDENTITIES))})")
    return problems
