"""docker compose: published ports agree with esper.mesh.ports, every collaborator a server names is a
dependency, and the third-party components listen where the Esper servers look for them."""

from __future__ import annotations

from typing import Any

import pytest

from esper.mesh.addresses import load_mesh
from esper.mesh.ports import (
    GRPC_PORTS,
    JAEGER_UI_PORT,
    MISSION_CONTROL_PORT,
    NATS_PORT,
    OTLP_GRPC_PORT,
    POSTGRES_PORT,
    PROMETHEUS_PORT,
    S3_PORT,
)
from tests.support.deploy import (
    COLLECTOR_CONFIG,
    COMPOSE_FILE,
    DEPLOY,
    HOST_MESH_FILE,
    PROMETHEUS_CONFIG,
    compose,
    compose_launches,
    compose_services,
    host_ports,
    published,
)

# The ports each service may publish on the host (a host port always equals the container port).
PUBLISHABLE = {
    "nats": {NATS_PORT},
    "postgres": {POSTGRES_PORT},
    "s3": {S3_PORT},
    "otel-collector": {OTLP_GRPC_PORT},
    "jaeger": {JAEGER_UI_PORT},
    "prometheus": {PROMETHEUS_PORT},
    **{name: {port} for name, port in GRPC_PORTS.items()},
}
PUBLISHABLE["nissa"] = {GRPC_PORTS["nissa"], MISSION_CONTROL_PORT}


def _depends_on(service: dict[str, Any]) -> set[str]:
    return set(service.get("depends_on", {}))


def test_every_published_port_is_well_known_and_loopback_only() -> None:
    for name, service in compose_services().items():
        for ip, host, container in published(service):
            assert ip == "127.0.0.1", f"{name} publishes {host} beyond loopback"
            assert host == container, f"{name} maps {host} to {container}"
            assert container in PUBLISHABLE.get(name, set()), f"{name} publishes {container}"


def test_the_operator_facing_ports_are_published() -> None:
    ports = {name: {container for _, _, container in published(s)} for name, s in compose_services().items()}
    assert JAEGER_UI_PORT in ports["jaeger"]
    assert PROMETHEUS_PORT in ports["prometheus"]
    assert MISSION_CONTROL_PORT in ports["nissa"]
    assert OTLP_GRPC_PORT in ports["otel-collector"]


def test_the_host_mesh_file_names_every_published_grpc_port() -> None:
    mesh = load_mesh(HOST_MESH_FILE)
    services = compose_services()
    assert set(mesh.grpc) == set(GRPC_PORTS)
    for name, address in mesh.grpc.items():
        assert address == f"127.0.0.1:{GRPC_PORTS[name]}"
        assert ("127.0.0.1", GRPC_PORTS[name], GRPC_PORTS[name]) in published(services[name])
    assert mesh.nats_url == f"tls://127.0.0.1:{NATS_PORT}"
    assert mesh.pki is not None and mesh.pki.ca == HOST_MESH_FILE.parent / "pki" / "ca.pem"
    assert ("127.0.0.1", NATS_PORT, NATS_PORT) in published(services["nats"])


@pytest.mark.parametrize("name", GRPC_PORTS)
def test_every_collaborator_a_server_names_is_a_dependency(name: str) -> None:
    services = compose_services()
    launch = compose_launches()[name]
    named = {host for host, _ in host_ports(launch.argv)} & set(services)
    depends = _depends_on(services[name])
    assert named - {name} <= depends, f"{name} names {named} but depends on {depends}"
    # A server only starts once the servers it calls answer their health check.
    for dependency, condition in services[name].get("depends_on", {}).items():
        expected = "service_started" if dependency == "otel-collector" else "service_healthy"
        assert condition["condition"] == expected, f"{name} -> {dependency}"


@pytest.mark.parametrize("name", GRPC_PORTS)
def test_every_esper_server_has_a_health_check_on_its_grpc_port(name: str) -> None:
    test = compose_services()[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "esper", "health"]
    assert test[-1] == f"127.0.0.1:{GRPC_PORTS[name]}"
    # Asked over mTLS as the server's own identity: the server refuses anything else.
    assert test[test.index("--tls-cert") + 1] == f"/run/secrets/{name}-cert"


def test_nats_runs_jetstream_on_its_well_known_port_with_a_persistent_store() -> None:
    nats = compose_services()["nats"]
    argv = [*nats["entrypoint"], *nats["command"]]
    assert argv == ["nats-server", "--config", "/etc/nats/nats.conf"]
    config = (DEPLOY / "nats" / "nats.conf").read_text(encoding="utf-8")
    assert f"port: {NATS_PORT}" in config and "jetstream" in config and "verify_and_map: true" in config
    assert any(str(volume).endswith(":/data") for volume in nats["volumes"])
    assert 'store_dir: "/data"' in config


def test_postgres_holds_the_databases_the_servers_use() -> None:
    services = compose_services()
    postgres = services["postgres"]
    databases = {postgres["environment"]["POSTGRES_DB"]}
    init = [str(v).split(":")[0] for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in str(v)]
    for path in init:
        text = (COMPOSE_FILE.parent / path).read_text(encoding="utf-8")
        databases |= {line.split()[2].rstrip(";") for line in text.splitlines() if line.startswith("CREATE DATABASE")}
    for name in ("urza", "simic"):
        url = compose_launches()[name].parsed().db
        assert url.startswith(
            f"postgresql+psycopg://{postgres['environment']['POSTGRES_USER']}@postgres:{POSTGRES_PORT}/"
        )
        assert url.rsplit("/", 1)[1] in databases
        # No password in the URL (it would show in `ps`): libpq reads PGPASSWORD.
        assert ":" not in url.split("://", 1)[1].split("@", 1)[0]
        assert services[name]["environment"]["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]


def test_urza_stores_artifacts_in_the_bucket_the_s3_server_creates() -> None:
    services = compose_services()
    s3_args = services["s3"]["command"]
    args = compose_launches()["urza"].parsed()
    assert f"-s3.port={S3_PORT}" in s3_args
    assert args.s3_endpoint == f"http://s3:{S3_PORT}"
    assert f"-bucket={args.store.removeprefix('s3://').split('/')[0]}" in s3_args
    s3_env, urza_env = services["s3"]["environment"], services["urza"]["environment"]
    assert (urza_env["AWS_ACCESS_KEY_ID"], urza_env["AWS_SECRET_ACCESS_KEY"]) == (
        s3_env["AWS_ACCESS_KEY_ID"],
        s3_env["AWS_SECRET_ACCESS_KEY"],
    )


def test_secrets_come_from_the_environment_and_must_be_set() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for variable in ("POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        assert f"${{{variable}:?" in text
        assert f"${{{variable}:-" not in text, f"{variable} must have no default"
    example = (COMPOSE_FILE.parent / "env.example").read_text(encoding="utf-8")
    assert {"POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"} <= {
        line.split("=")[0] for line in example.splitlines() if "=" in line and not line.startswith("#")
    }


def test_the_collector_and_prometheus_read_the_files_checked_here() -> None:
    services = compose_services()
    collector = services["otel-collector"]
    config_path = collector["command"][0].removeprefix("--config=")
    assert f"../otel/{COLLECTOR_CONFIG.name}:{config_path}:ro" in collector["volumes"]
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "../prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert PROMETHEUS_CONFIG.parent.name == "prometheus"


def test_every_named_volume_is_declared() -> None:
    declared = set(compose().get("volumes", {}))
    for name, service in compose_services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            else:
                assert (COMPOSE_FILE.parent / source).exists(), f"{name} mounts missing {source}"
