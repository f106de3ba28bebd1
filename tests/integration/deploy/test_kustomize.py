"""`kubectl kustomize deploy/` renders the mesh (kubectl's built-in kustomize, offline): every object lands
in the esper namespace, every generated ConfigMap holds the file it names, and every reference to a
generated (hash-suffixed) ConfigMap is rewritten to it."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.deploy import DEPLOY, generated_config_maps, k8s_documents

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_every_manifest_is_rendered_into_the_esper_namespace(rendered: list[dict[str, Any]]) -> None:
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered}
    assert {(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_documents()} <= names
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "esper", doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "esper"


def test_generated_config_maps_hold_the_files_they_name(rendered: list[dict[str, Any]]) -> None:
    config_maps = {
        doc["metadata"]["name"].rsplit("-", 1)[0]: doc.get("data", {}) for doc in rendered if doc["kind"] == "ConfigMap"
    }
    for name, files in generated_config_maps().items():
        assert set(config_maps[name]) == set(files)
        for key, path in files.items():
            assert config_maps[name][key] == (DEPLOY / path).read_text(encoding="utf-8")


def test_every_config_map_volume_points_at_a_rendered_config_map(rendered: list[dict[str, Any]]) -> None:
    config_maps = {doc["metadata"]["name"] for doc in rendered if doc["kind"] == "ConfigMap"}
    referenced = 0
    for doc in rendered:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for volume in doc["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps, volume
                    referenced += 1
    assert referenced >= 4  # collector, prometheus config and rules, mesh.json, postgres init
