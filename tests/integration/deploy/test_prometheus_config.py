"""`promtool check config` passes on deploy/prometheus/prometheus.yml, in the compose layout and in the
layout the Kubernetes ConfigMaps mount, and it loads every alert rules file (checking each one too)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import DEPLOY, PROMETHEUS_CONFIG, rules_files

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.fixture(autouse=True)
def _promtool() -> None:
    if not Path(PROMTOOL).is_file():
        pytest.skip("promtool is not installed (Debian package prometheus)")


def check_config(path: Path) -> str:
    done = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def rule_files_found(output: str) -> int:
    match = re.search(r"SUCCESS: (\d+) rule files? found", output)
    return int(match.group(1)) if match else 0


def test_the_compose_layout_passes_and_loads_every_rules_file() -> None:
    # compose mounts deploy/prometheus/ as /etc/prometheus/, so the file is checked where it is.
    output = check_config(PROMETHEUS_CONFIG)
    assert rule_files_found(output) == len(rules_files())


def test_the_kubernetes_layout_passes_and_loads_every_rules_file(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    config_maps = {
        doc["metadata"]["name"].rsplit("-", 1)[0]: doc.get("data", {})
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["kind"] == "ConfigMap"
    }
    # The Prometheus Deployment mounts prometheus.yml at /etc/prometheus/ and the rules at /etc/prometheus/rules/.
    (tmp_path / "rules").mkdir()
    (tmp_path / "prometheus.yml").write_text(config_maps["prometheus-config"]["prometheus.yml"])
    for name, text in config_maps["prometheus-rules"].items():
        (tmp_path / "rules" / name).write_text(text)
    output = check_config(tmp_path / "prometheus.yml")
    assert rule_files_found(output) == len(rules_files())


def test_a_broken_rules_file_fails_the_check(tmp_path: Path) -> None:
    shutil.copy(PROMETHEUS_CONFIG, tmp_path / "prometheus.yml")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "broken.yml").write_text(
        "groups:\n- name: broken\n  rules:\n  - alert: Broken\n    expr: up ==\n"
    )
    done = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "broken.yml" in done.stdout + done.stderr
