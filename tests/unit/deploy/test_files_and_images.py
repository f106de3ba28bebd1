"""deploy/ parses, every image is pinned to an explicit version, and the image build has what it needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.support.deploy import (
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    compose_services,
    image_pin_problem,
    images_in,
    is_esper_image,
    k8s_documents,
    k8s_workloads,
    load_all,
    pod_spec,
    yaml_files,
)


def _project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        return str(tomllib.load(stream)["project"]["version"])


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def test_deploy_holds_the_expected_yaml() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in yaml_files()}
    assert {
        "deploy/compose/compose.yaml",
        "deploy/otel/collector.yaml",
        "deploy/prometheus/prometheus.yml",
        "deploy/kustomization.yaml",
        "deploy/k8s/urza.yaml",
    } <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_yaml_file_parses(path: Path) -> None:
    documents = load_all(path)
    assert documents, f"{path} holds no document"
    assert all(isinstance(document, dict) for document in documents)


@pytest.mark.parametrize(
    ("reference", "pinned"),
    [
        ("nats:2.15.1-alpine", True),
        ("prom/prometheus:v2.42.0", True),
        ("registry.example:5000/team/esper:0.1.0", True),
        ("nats@sha256:" + "a" * 64, True),
        ("nats", False),
        ("nats:latest", False),
        ("nats:alpine", False),
        ("registry.example:5000/team/esper", False),
        ("esper:${ESPER_VERSION:-0.1.0}", False),
    ],
)
def test_pin_rule(reference: str, pinned: bool) -> None:
    assert (image_pin_problem(reference) is None) is pinned


def test_every_image_in_deploy_is_pinned_to_an_explicit_version() -> None:
    images = {(path.name, image) for path in yaml_files() for doc in load_all(path) for image in images_in(doc)}
    assert len(images) >= 10
    problems = [f"{name}: {image} {image_pin_problem(image)}" for name, image in images if image_pin_problem(image)]
    assert not problems, problems


def test_the_dockerfile_base_images_are_pinned() -> None:
    bases = [args.split()[0] for instruction, args in _dockerfile_instructions() if instruction == "FROM"]
    assert bases
    problems = [f"{base} {image_pin_problem(base)}" for base in bases if image_pin_problem(base)]
    assert not problems, problems


def test_the_esper_image_tag_is_the_project_version_everywhere() -> None:
    version = _project_version()
    esper_images = {
        image for path in yaml_files() for doc in load_all(path) for image in images_in(doc) if is_esper_image(image)
    }
    assert esper_images == {f"esper:{version}"}
    assert f"docker build -t esper:{version} ." in DOCKERFILE.read_text(encoding="utf-8")


def test_compose_and_kubernetes_run_the_same_image_for_each_component() -> None:
    workloads = k8s_workloads()
    compose_images = {name: service["image"] for name, service in compose_services().items()}
    k8s_images = {name: {c["image"] for c in pod_spec(workload)["containers"]} for name, workload in workloads.items()}
    assert set(compose_images) == set(k8s_images)
    mismatched = {
        name: (image, k8s_images[name]) for name, image in compose_images.items() if k8s_images[name] != {image}
    }
    assert not mismatched


def test_kubernetes_objects_all_have_kind_and_name() -> None:
    for file_name, doc in k8s_documents():
        assert doc.get("apiVersion") and doc.get("kind"), file_name
        assert doc.get("metadata", {}).get("name"), file_name


def test_the_image_installs_torch_from_the_cpu_index_at_the_pinned_version() -> None:
    runs = " ".join(args for instruction, args in _dockerfile_instructions() if instruction == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs
    # The pin is read from requirements.txt at build time, so the two cannot drift.
    assert "grep -E '^torch==' requirements.txt" in runs
    assert "pip install -r requirements.txt" in runs
    assert "pip install --no-deps --no-build-isolation ." in runs
    assert any(line.startswith("torch==") for line in (ROOT / "requirements.txt").read_text().splitlines())


def test_the_image_entry_point_is_esper() -> None:
    entrypoints = [args for instruction, args in _dockerfile_instructions() if instruction == "ENTRYPOINT"]
    assert entrypoints == ['["esper"]']


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = []
    for instruction, args in _dockerfile_instructions():
        if instruction == "COPY" and not args.startswith("--from"):
            sources.extend(args.split()[:-1])
    assert {"requirements.txt", "pyproject.toml", "README.md", "generated", "server", "clients"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source not in ignored and source.split("/")[0] not in ignored, f"{source} is in .dockerignore"
    # pyproject.toml's readme must be in the context too, or `pip install .` fails in the build.
    with (ROOT / "pyproject.toml").open("rb") as stream:
        assert tomllib.load(stream)["project"]["readme"] in sources
