"""Dependencies point one way: generated <- domain <- esper.mesh <- subsystem serve modules <- esper.cli.

Read from the source (every import, also those inside functions and under
TYPE_CHECKING): no subsystem imports esper.cli, only the transport edges import
grpc or nats, and no two parts of the code import each other, directly or round a
longer loop.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = (ROOT / "server", ROOT / "clients")

# The only modules that may speak gRPC or NATS themselves, and why.
TRANSPORT_EDGES = {
    "esper.mesh": "hosting, interceptors and the wire form of errors",
    "esper.clients": "typed clients over gRPC channels",
    "esper.cli": "the command line checks servers' health",
    "esper.oona.jetstream": "the NATS JetStream bus",
    "esper.oona.sender": "the NATS JetStream bus",
    "esper.oona.consumer": "the NATS JetStream bus",
    "esper.oona.dead_letters": "the NATS JetStream bus",
    "esper.oona.streams": "the NATS JetStream bus",
    "esper.nissa.forwarder": "forwards OTLP exports to another collector over gRPC",
    "esper.tolaria.mesh_collaborators": "a mesh run's channel to Tamiyo, watched for reconnects",
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in SOURCE_FOLDERS:
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _part(module: str) -> str:
    """The part of the code a module belongs to: its subsystem, or the subsystem's serve layer."""
    parts = module.split(".")
    if len(parts) > 2 and parts[2] == "serve":
        return ".".join(parts[:3])
    return ".".join(parts[:2])


MODULES = _modules()
IMPORTS = {name: set(_imports(name, path)) for name, path in MODULES.items()}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# `python -m esper` is the command line itself.
COMMAND_LINE_ENTRY_POINTS = {"esper.__main__"}


def test_no_subsystem_imports_the_command_line() -> None:
    offenders = {
        name: sorted(i for i in imported if _within(i, "esper.cli"))
        for name, imported in IMPORTS.items()
        if not _within(name, "esper.cli") and name not in COMMAND_LINE_ENTRY_POINTS
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_only_the_transport_edges_import_grpc_or_nats() -> None:
    offenders = {
        name: sorted(i for i in imported if _within(i, "grpc") or _within(i, "nats"))
        for name, imported in IMPORTS.items()
        if not any(_within(name, edge) for edge in TRANSPORT_EDGES)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_import_cycles_between_parts_of_the_code() -> None:
    parts = {_part(name) for name in MODULES}
    graph: dict[str, set[str]] = {part: set() for part in parts}
    for name, imported in IMPORTS.items():
        for target in imported:
            if not target.startswith("esper.") or target.startswith("esper.leyline"):
                continue
            if _part(target) in parts and _part(target) != _part(name):
                graph[_part(name)].add(_part(target))
    assert [cycle for cycle in _strongly_connected(graph) if len(cycle) > 1] == []


def test_the_graph_is_read_from_the_real_tree() -> None:
    # A test that cannot fail is worse than none: the walk must see the modules it judges.
    assert {"esper.cli.main", "esper.mesh.server", "esper.urza.hub", "esper.clients.base"} <= set(MODULES)
    assert "esper.mesh.server" in IMPORTS["esper.cli.serve"] or "esper.mesh.target" in IMPORTS["esper.cli.serve"]
    loop = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in _strongly_connected(loop) if len(c) > 1] == [["a", "b", "c"]]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; each component sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_test_tiers_share_code_only_through_tests_support() -> None:
    tests = ROOT / "tests"
    offenders: dict[str, list[str]] = {}
    for path in tests.rglob("*.py"):
        tier = path.relative_to(tests).parts[0]
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        imported = set(_imports(name, path))
        # tests/support and top-level files import no tier; a tier imports only itself and tests/support.
        others = [t for t in ("tests.unit", "tests.rpc", "tests.integration") if t != f"tests.{tier}"]
        found = sorted(i for i in imported if any(_within(i, other) for other in others))
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}
