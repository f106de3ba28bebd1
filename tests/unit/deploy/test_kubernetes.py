"""Kubernetes manifests: Services expose the well-known ports of esper.mesh.ports on the right pods,
and every reference (labels, named ports, volumes, ConfigMaps, Secrets, PVCs) resolves."""

from __future__ import annotations

from typing import Any

import pytest

from esper.mesh.ports import (
    GRPC_PORTS,
    JAEGER_UI_PORT,
    METRICS_PORTS,
    MISSION_CONTROL_PORT,
    NATS_PORT,
    OTLP_GRPC_PORT,
    POSTGRES_PORT,
    PROMETHEUS_PORT,
    S3_PORT,
)
from tests.support.deploy import (
    DEPLOY,
    K8S_DIR,
    WORKLOAD_KINDS,
    compose_services,
    generated_config_maps,
    k8s_documents,
    k8s_objects,
    k8s_workloads,
    kustomization,
    pod_spec,
    rules_files,
    service_ports,
)

SERVICE_PORTS = {
    "nats": {NATS_PORT},
    "postgres": {POSTGRES_PORT},
    "s3": {S3_PORT},
    "otel-collector": {OTLP_GRPC_PORT},
    "jaeger": {JAEGER_UI_PORT, OTLP_GRPC_PORT},
    "prometheus": {PROMETHEUS_PORT},
    **{name: {GRPC_PORTS[name], METRICS_PORTS[name]} for name in GRPC_PORTS},
}
SERVICE_PORTS["nissa"] = SERVICE_PORTS["nissa"] | {MISSION_CONTROL_PORT}
NAMESPACED = (
    "Service",
    "Deployment",
    "StatefulSet",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "NetworkPolicy",
)


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    return containers


def _selected_workload(service: dict[str, Any]) -> dict[str, Any]:
    selector = service["spec"]["selector"]
    matches = [
        w for w in k8s_workloads().values() if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(matches) == 1, f"Service {service['metadata']['name']} selects {len(matches)} workloads"
    return matches[0]


def _container_port(workload: dict[str, Any], target: int | str) -> int:
    for container in _containers(workload):
        for port in container.get("ports", []):
            if target in (port.get("name"), port["containerPort"]):
                return int(port["containerPort"])
    raise AssertionError(f"{workload['metadata']['name']} has no container port {target!r}")


def test_every_component_has_a_service_and_a_workload_of_the_same_name() -> None:
    services, workloads = k8s_objects("Service"), k8s_workloads()
    assert set(services) == set(SERVICE_PORTS)
    assert set(workloads) == set(SERVICE_PORTS)


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_each_service_exposes_its_well_known_ports_on_the_same_container_ports(name: str) -> None:
    service = k8s_objects("Service")[name]
    ports = service_ports(service)
    assert SERVICE_PORTS[name] <= set(ports)
    workload = _selected_workload(service)
    for port, target in ports.items():
        assert _container_port(workload, target) == port, f"{name}: Service port {port} -> {target}"


@pytest.mark.parametrize("name", GRPC_PORTS)
def test_esper_servers_are_probed_over_grpc_health_on_their_grpc_port(name: str) -> None:
    # The kubelet has no client certificate: the pod asks itself over mTLS, as the compose check does.
    (container,) = _containers(k8s_workloads()[name])
    compose_check = compose_services()[name]["healthcheck"]["test"][1:]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == compose_check, probe
        assert container[probe]["exec"]["command"][-1] == f"127.0.0.1:{GRPC_PORTS[name]}"


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_workload_selectors_match_their_pod_labels(name: str) -> None:
    workload = k8s_workloads()[name]
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    if workload["kind"] == "StatefulSet":
        assert workload["spec"]["serviceName"] in k8s_objects("Service")


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_container_commands_and_env_values_are_strings(name: str) -> None:
    for container in _containers(k8s_workloads()[name]):
        for key in ("command", "args"):
            assert all(isinstance(arg, str) for arg in container.get(key, [])), f"{name} {key}"
        for item in container.get("env", []):
            assert isinstance(item.get("value", ""), str), f"{name} env {item['name']}"
        for port in container.get("ports", []):
            assert isinstance(port["containerPort"], int)


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_every_named_probe_port_is_a_container_port(name: str) -> None:
    workload = k8s_workloads()[name]
    for container in _containers(workload):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            handler = container.get(probe, {})
            for kind in ("httpGet", "grpc", "tcpSocket"):
                if kind in handler:
                    _container_port(workload, handler[kind]["port"])


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_every_volume_mount_config_map_secret_and_claim_resolves(name: str) -> None:
    workload = k8s_workloads()[name]
    spec = pod_spec(workload)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    templates = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
    config_maps = set(generated_config_maps()) | set(k8s_objects("ConfigMap"))
    secrets, claims = k8s_objects("Secret"), k8s_objects("PersistentVolumeClaim")
    for container in _containers(workload):
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes or mount["name"] in templates, f"{name}: volume {mount['name']}"
            sub_path = mount.get("subPath")
            source = volumes.get(mount["name"], {}).get("configMap")
            if sub_path and source:
                keys = generated_config_maps()[source["name"]]
                assert sub_path in keys, f"{name}: {source['name']} has no {sub_path}"
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"], f"{name}: {ref}"
    for volume in volumes.values():
        if "configMap" in volume:
            assert volume["configMap"]["name"] in config_maps, f"{name}: ConfigMap {volume['configMap']['name']}"
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_stateful_third_party_components_keep_their_data_on_claims() -> None:
    for name in ("nats", "postgres", "s3"):
        workload = k8s_workloads()[name]
        assert workload["kind"] == "StatefulSet"
        (template,) = workload["spec"]["volumeClaimTemplates"]
        mounts = {m["name"] for c in _containers(workload) for m in c.get("volumeMounts", [])}
        assert template["metadata"]["name"] in mounts


def test_workloads_with_a_claim_are_replaced_not_rolled() -> None:
    for name, workload in k8s_workloads().items():
        uses_claim = any("persistentVolumeClaim" in v for v in pod_spec(workload).get("volumes", []))
        if workload["kind"] == "Deployment" and uses_claim:
            assert workload["spec"]["strategy"]["type"] == "Recreate", name


def test_esper_pods_run_as_the_image_user_and_can_write_their_volumes() -> None:
    for name in GRPC_PORTS:
        context = pod_spec(k8s_workloads()[name])["securityContext"]
        assert (context["runAsNonRoot"], context["runAsUser"], context["fsGroup"]) == (True, 10001, 10001)


def test_secrets_are_placeholders_to_replace() -> None:
    for secret in k8s_objects("Secret").values():
        assert all("CHANGE-ME" in value for key, value in secret["stringData"].items() if key != "access-key")


def test_the_kustomization_lists_every_manifest_and_every_rules_file() -> None:
    listed = {resource.removeprefix("k8s/") for resource in kustomization()["resources"]}
    assert listed == {path.name for path in K8S_DIR.glob("*.yaml")}
    rules = generated_config_maps()["prometheus-rules"]
    assert {path.name for path in rules_files()} == set(rules)
    for files in generated_config_maps().values():
        for path in files.values():
            assert (DEPLOY / path).is_file(), path


def test_namespaced_objects_leave_the_namespace_to_the_kustomization() -> None:
    assert kustomization()["namespace"] == "esper"
    assert k8s_objects("Namespace").keys() == {"esper"}
    for file_name, doc in k8s_documents():
        if doc["kind"] in NAMESPACED:
            assert "namespace" not in doc["metadata"], f"{file_name}: {doc['metadata']['name']}"


def test_every_workload_kind_is_known() -> None:
    kinds = {doc["kind"] for _, doc in k8s_documents()}
    assert kinds <= {"Namespace", *NAMESPACED}
    assert {"Deployment", "StatefulSet"} <= kinds
    assert set(WORKLOAD_KINDS) <= kinds


@pytest.mark.parametrize("name", ["nats", "s3", "otel-collector", "prometheus"])
def test_third_party_components_start_as_in_compose(name: str) -> None:
    service = compose_services()[name]
    (container,) = _containers(k8s_workloads()[name])
    compose_argv = [*service.get("entrypoint", []), *service["command"]]
    assert [*container.get("command", []), *container["args"]] == compose_argv
