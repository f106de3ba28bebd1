"""Reading deploy/ for the checks: the compose file, the Kubernetes objects, and each Esper server's launch.

An Esper server's launch (its `esper serve` arguments, environment, ports and
mounts) is read the same way from compose and from Kubernetes, so one set of
checks covers both.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
K8S_DIR = DEPLOY / "k8s"
KUSTOMIZATION = DEPLOY / "kustomization.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
COLLECTOR_CONFIG = DEPLOY / "otel" / "collector.yaml"
MESH_FILE = DEPLOY / "config" / "mesh.json"
HOST_MESH_FILE = DEPLOY / "compose" / "mesh.host.json"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ESPER_IMAGE = "esper"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

# A pinned image names an explicit version: `name:1.2[.3][-suffix]` (or a digest).
_VERSION_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)*([-.+_][A-Za-z0-9.]+)*$")
# host:port inside a flag value: "urza:50051", "nats://nats:4222", "postgresql+psycopg://u@postgres:5432/db".
_HOST_PORT = re.compile(r"^(?:[a-z0-9+]+://)?(?:[^@/]+@)?([a-z0-9.-]+):(\d+)(?:/.*)?$")


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def load_one(path: Path) -> Any:
    (document,) = load_all(path)
    return document


def image_pin_problem(reference: str) -> str | None:
    """Why `reference` is not pinned to an explicit version, or None when it is."""
    if "$" in reference:
        return "names its tag through a variable"
    if re.search(r"@sha256:[0-9a-f]{64}$", reference):
        return None
    _, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return "has no tag (means latest)"
    if tag == "latest":
        return "is tagged latest"
    if not _VERSION_TAG.match(tag):
        return f"tag {tag!r} is not an explicit version"
    return None


def images_in(node: Any) -> Iterator[str]:
    """Every value of an `image` key anywhere in a YAML document."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from images_in(item)


def is_esper_image(reference: str) -> bool:
    return reference.rpartition(":")[0] == ESPER_IMAGE


def parse_serve(argv: Sequence[str]) -> argparse.Namespace:
    """`argv` (without the `esper` entry point) parsed by the real CLI parser; AssertionError naming the fault."""
    from esper.cli.main import build_parser

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return build_parser().parse_args(list(argv))
    except SystemExit as exc:
        raise AssertionError(f"`esper {' '.join(argv)}` does not parse: {errors.getvalue().strip()}") from exc


def host_ports(values: Sequence[str]) -> list[tuple[str, int]]:
    """The (host, port) pairs named by flag values such as "urza:50051" or "nats://nats:4222"."""
    found = []
    for value in values:
        match = _HOST_PORT.match(value)
        if match:
            found.append((match.group(1), int(match.group(2))))
    return found


@dataclass(frozen=True)
class Launch:
    """How one container starts, read from compose or from Kubernetes."""

    where: str
    argv: tuple[str, ...]
    env: Mapping[str, str | None]  # None: the value comes from a Secret
    container_ports: frozenset[int]
    mounts: Mapping[str, str] = field(default_factory=dict)  # mount path -> what is mounted

    def parsed(self) -> argparse.Namespace:
        return parse_serve(self.argv)


# Compose


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_one(COMPOSE_FILE)
    return document


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def published(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of every `ports:` entry, in the short "ip:host:container" form."""
    found = []
    for entry in service.get("ports", []):
        ip, host, container = str(entry).rsplit(":", 2) if str(entry).count(":") == 2 else ("", *str(entry).split(":"))
        found.append((ip, int(host), int(container)))
    return found


def compose_launches() -> dict[str, Launch]:
    """Every service running the Esper image, by service name."""
    launches = {}
    for name, service in compose_services().items():
        if not is_esper_image(service.get("image", "")):
            continue
        environment = service.get("environment", {})
        env = {key: (None if "${" in str(value) else str(value)) for key, value in environment.items()}
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
        launches[name] = Launch(
            where=f"compose service {name}",
            argv=tuple(str(arg) for arg in service["command"]),
            env=env,
            container_ports=frozenset(container for _, _, container in published(service)),
            mounts=mounts,
        )
    return launches


# Kubernetes


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, object) for every object in deploy/k8s/*.yaml."""
    return tuple((path.name, doc) for path in sorted(K8S_DIR.glob("*.yaml")) for doc in load_all(path))


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def k8s_workloads() -> dict[str, dict[str, Any]]:
    workloads: dict[str, dict[str, Any]] = {}
    for kind in WORKLOAD_KINDS:
        workloads.update(k8s_objects(kind))
    return workloads


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def k8s_launches() -> dict[str, Launch]:
    """Every workload whose container runs the Esper image, by workload name."""
    launches = {}
    for name, workload in k8s_workloads().items():
        spec = pod_spec(workload)
        for container in spec["containers"]:
            if not is_esper_image(container["image"]):
                continue
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
            mounts = {
                mount["mountPath"]: _volume_source(volumes.get(mount["name"], {}))
                for mount in container.get("volumeMounts", [])
            }
            launches[name] = Launch(
                where=f"Kubernetes workload {name}",
                argv=tuple(container.get("command", [])[1:]) + tuple(container.get("args", [])),
                env=env,
                container_ports=frozenset(port["containerPort"] for port in container.get("ports", [])),
                mounts=mounts,
            )
    return launches


def _volume_source(volume: Mapping[str, Any]) -> str:
    for key in ("persistentVolumeClaim", "configMap", "secret", "emptyDir"):
        if key in volume:
            detail = volume[key] or {}
            return f"{key}:{detail.get('claimName') or detail.get('name') or ''}"
    return "unknown"


def service_ports(service: Mapping[str, Any]) -> dict[int, Any]:
    """Service port -> its targetPort."""
    return {port["port"]: port.get("targetPort", port["port"]) for port in service["spec"]["ports"]}


def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = load_one(KUSTOMIZATION)
    return document


def generated_config_maps() -> dict[str, dict[str, str]]:
    """configMapGenerator name -> {key in the ConfigMap: file path relative to deploy/}."""
    found: dict[str, dict[str, str]] = {}
    for generator in kustomization().get("configMapGenerator", []):
        files = {}
        for entry in generator.get("files") or []:
            key, _, path = entry.rpartition("=")
            files[key or Path(path).name] = path
        found[generator["name"]] = files
    return found


def rules_files() -> list[Path]:
    if not RULES_DIR.is_dir():
        return []
    return sorted(p for p in RULES_DIR.iterdir() if p.suffix in {".yml", ".yaml"})
