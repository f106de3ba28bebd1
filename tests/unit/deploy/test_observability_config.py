"""Prometheus scrapes every server's well-known metrics port under its subsystem's job name; the collector
sends traces to Jaeger and to Nissa's gRPC port; the deploy mesh.json names the same addresses."""

from __future__ import annotations

import json
from typing import Any

from esper.mesh.addresses import load_mesh
from esper.mesh.ports import GRPC_PORTS, METRICS_PORTS, NATS_PORT, OTLP_GRPC_PORT
from tests.support.deploy import (
    COLLECTOR_CONFIG,
    MESH_FILE,
    PROMETHEUS_CONFIG,
    compose_services,
    k8s_objects,
    load_one,
    service_ports,
)


def _scrape_targets() -> dict[str, list[str]]:
    config = load_one(PROMETHEUS_CONFIG)
    return {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }


def _collector() -> dict[str, Any]:
    config: dict[str, Any] = load_one(COLLECTOR_CONFIG)
    return config


def test_one_scrape_job_per_subsystem_named_after_it_on_its_metrics_port() -> None:
    targets = _scrape_targets()
    assert set(targets) == set(METRICS_PORTS)
    for job, found in targets.items():
        assert found == [f"{job}:{METRICS_PORTS[job]}"]


def test_scrape_targets_are_services_that_expose_those_ports() -> None:
    k8s_services, compose = k8s_objects("Service"), compose_services()
    for found in _scrape_targets().values():
        for target in found:
            host, port = target.split(":")
            assert int(port) in service_ports(k8s_services[host])
            assert host in compose


def test_prometheus_loads_the_alert_rules_folder() -> None:
    assert load_one(PROMETHEUS_CONFIG)["rule_files"] == ["rules/*.yml"]


def test_the_collector_receives_otlp_grpc_on_its_well_known_port_on_every_interface() -> None:
    grpc = _collector()["receivers"]["otlp"]["protocols"]["grpc"]
    assert grpc["endpoint"] == f"0.0.0.0:{OTLP_GRPC_PORT}"


def test_the_collector_exports_every_batch_to_jaeger_and_to_nissa() -> None:
    config = _collector()
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert "batch" in pipeline["processors"]
    assert all(name in config["processors"] for name in pipeline["processors"])
    endpoints = {config["exporters"][name]["endpoint"] for name in pipeline["exporters"]}
    assert endpoints == {f"nissa:{GRPC_PORTS['nissa']}", f"jaeger:{OTLP_GRPC_PORT}"}
    for name in pipeline["exporters"]:
        assert name.split("/")[0] == "otlp"
    # Nissa speaks mTLS only: the collector reaches it as the mesh identity `otel-collector`.
    nissa_tls = config["exporters"]["otlp/nissa"]["tls"]
    assert nissa_tls["cert_file"] == "/etc/esper/pki/identity.pem" and "insecure" not in nissa_tls
    receiver_tls = config["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
    assert receiver_tls["client_ca_file"] == "/etc/esper/pki/ca.pem"


def test_the_collector_exports_where_jaeger_and_nissa_listen() -> None:
    services = k8s_objects("Service")
    assert OTLP_GRPC_PORT in service_ports(services["jaeger"])
    assert GRPC_PORTS["nissa"] in service_ports(services["nissa"])
    assert compose_services()["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_the_collector_serves_the_health_endpoint_its_probes_use() -> None:
    config = _collector()
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    assert config["service"]["extensions"] == ["health_check"]


def test_the_deploy_mesh_file_names_every_server_at_its_well_known_ports() -> None:
    mesh = load_mesh(MESH_FILE)
    assert mesh.grpc == {name: f"{name}:{port}" for name, port in GRPC_PORTS.items()}
    assert mesh.nats_url == f"tls://nats:{NATS_PORT}"
    document = json.loads(MESH_FILE.read_text(encoding="utf-8"))
    assert {name: document[name]["metrics"] for name in METRICS_PORTS} == {
        name: f"{name}:{port}" for name, port in METRICS_PORTS.items()
    }
    assert dict(mesh.metrics) == {name: f"{name}:{port}" for name, port in METRICS_PORTS.items()}
