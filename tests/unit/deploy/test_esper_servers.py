"""Every Esper server in compose and in Kubernetes: a command line the real CLI accepts, the well-known
ports of esper.mesh.ports, collaborators at their well-known addresses, traces to the collector."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest

from esper.mesh.ports import GRPC_PORTS, METRICS_PORTS, MISSION_CONTROL_PORT, NATS_PORT, OTLP_GRPC_PORT
from esper.observability.tracing import TracingConfig
from tests.support.deploy import Launch, compose_launches, host_ports, k8s_launches, parse_serve

SOURCES = {"compose": compose_launches, "k8s": k8s_launches}
CASES = [(source, name) for source in SOURCES for name in GRPC_PORTS]
COLLECTOR = f"https://otel-collector:{OTLP_GRPC_PORT}"
# Flags naming files or folders whose contents must outlive the container.
PERSISTENT = {"tezzeret": ("wal_dir", "work_dir"), "tolaria": ("runs_dir",), "nissa": ("db",)}


def launch(source: str, name: str) -> Launch:
    return SOURCES[source]()[name]


@pytest.mark.parametrize("source", SOURCES)
def test_every_subsystem_has_exactly_one_server(source: str) -> None:
    assert set(SOURCES[source]()) == set(GRPC_PORTS)


def test_the_parser_check_catches_a_renamed_flag() -> None:
    with pytest.raises(AssertionError, match="--no-such-flag"):
        parse_serve(["serve", "karn", "--no-such-flag", "1"])


@pytest.mark.parametrize(("source", "name"), CASES)
def test_the_command_line_parses_with_the_real_cli(source: str, name: str) -> None:
    args = launch(source, name).parsed()
    assert (args.command, args.name if hasattr(args, "name") else name) == ("serve", name)
    assert launch(source, name).argv[:2] == ("serve", name)


@pytest.mark.parametrize(("source", "name"), CASES)
def test_the_server_listens_on_its_well_known_ports_on_every_interface(source: str, name: str) -> None:
    server = launch(source, name)
    args = server.parsed()
    assert args.host == "0.0.0.0"
    assert args.port == GRPC_PORTS[name]
    assert args.metrics_port == METRICS_PORTS[name]
    assert GRPC_PORTS[name] in server.container_ports
    if source == "k8s":
        assert METRICS_PORTS[name] in server.container_ports


@pytest.mark.parametrize("source", SOURCES)
def test_nissa_serves_mission_control_on_its_well_known_port(source: str) -> None:
    server = launch(source, "nissa")
    assert server.parsed().web_port == MISSION_CONTROL_PORT
    assert MISSION_CONTROL_PORT in server.container_ports


@pytest.mark.parametrize(("source", "name"), CASES)
def test_collaborators_are_named_at_their_well_known_ports(source: str, name: str) -> None:
    args = launch(source, name).parsed()
    for flag in ("urza", "tamiyo"):
        if getattr(args, flag, None) is not None:
            assert getattr(args, flag) == f"{flag}:{GRPC_PORTS[flag]}"
    if getattr(args, "nats", None) is not None:
        assert args.nats == f"tls://nats:{NATS_PORT}"
    named = dict(host_ports([str(value) for value in vars(args).values() if isinstance(value, str)]))
    for host, port in named.items():
        if host in GRPC_PORTS:
            assert port == GRPC_PORTS[host], f"{name} names {host}:{port}"


@pytest.mark.parametrize(("source", "name"), CASES)
def test_spans_go_to_the_collector_under_the_subsystem_name(source: str, name: str) -> None:
    env = launch(source, name).env
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == COLLECTOR
    assert env["OTEL_SERVICE_NAME"] == name
    config = TracingConfig.from_environ("esper", {k: v for k, v in env.items() if v is not None})
    assert config.service_name == name
    assert config.endpoint == COLLECTOR
    # The collector forwards to Nissa: Nissa's own spans would come back to it without end.
    assert config.enabled is (name != "nissa")
    # Spans leave over mTLS, as the server's own identity.
    assert not config.insecure
    assert env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] == f"/run/secrets/{name}-cert"


@pytest.mark.parametrize(("source", "name"), CASES)
def test_every_server_speaks_mtls_as_itself_and_signs_the_bus(source: str, name: str) -> None:
    args = launch(source, name).parsed()
    assert (str(args.tls_cert), str(args.tls_key), str(args.tls_ca)) == (
        f"/run/secrets/{name}-cert",
        f"/run/secrets/{name}-key",
        "/run/secrets/esper-ca",
    )
    assert not args.insecure
    if getattr(args, "nats", None) is not None:
        assert args.bus_secret_file is not None and str(args.bus_secret_file) == "/run/secrets/bus-key"
    if name in ("urza", "urabrask", "tolaria"):
        assert [str(path) for path in args.trusted_signers] == ["/run/secrets/kernel-signers"]
    if name == "tezzeret":
        assert str(args.signing_key) == "/run/secrets/kernel-signing-key"


@pytest.mark.parametrize(("source", "name"), CASES)
def test_no_secret_is_on_a_command_line(source: str, name: str) -> None:
    argv = " ".join(launch(source, name).argv)
    assert "-----BEGIN" not in argv and "CHANGE-ME" not in argv
    assert not re.search(r"://[^/@\s]*:[^/@\s]*@", argv), "a URL with a password"
    for flag in ("--s3-access-key", "--s3-secret-key", "--password"):
        assert flag not in argv


@pytest.mark.parametrize(("source", "name"), [case for case in CASES if case[1] in PERSISTENT])
def test_state_that_must_survive_a_restart_lives_on_a_volume(source: str, name: str) -> None:
    server = launch(source, name)
    args = server.parsed()
    volumes = [
        PurePosixPath(path)
        for path, what in server.mounts.items()
        if not what.startswith(("configMap", "emptyDir")) and not what.startswith("..")
    ]
    for flag in PERSISTENT[name]:
        path = PurePosixPath(getattr(args, flag))
        assert any(path.is_relative_to(volume) for volume in volumes), f"{name} --{flag} {path} is on no volume"


@pytest.mark.parametrize("source", SOURCES)
def test_nissa_reads_the_deploy_mesh_file_it_is_given(source: str) -> None:
    server = launch(source, "nissa")
    mesh = PurePosixPath(server.parsed().mesh)
    mounted = {PurePosixPath(path): what for path, what in server.mounts.items()}
    assert mounted.get(mesh) == "../config/mesh.json" or mounted.get(mesh.parent) == "configMap:esper-mesh"


@pytest.mark.parametrize("name", GRPC_PORTS)
def test_compose_and_kubernetes_start_each_server_the_same_way(name: str) -> None:
    compose, k8s = compose_launches()[name], k8s_launches()[name]
    assert compose.argv == k8s.argv
    assert set(compose.env) == set(k8s.env)
    literal = {key for key in compose.env if compose.env[key] is not None and k8s.env[key] is not None}
    assert {key: compose.env[key] for key in literal} == {key: k8s.env[key] for key in literal}
    # A value taken from a secret in one place is a secret in the other too.
    assert {key for key, value in compose.env.items() if value is None} == {
        key for key, value in k8s.env.items() if value is None
    }
