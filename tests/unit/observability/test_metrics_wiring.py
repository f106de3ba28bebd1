"""Where a server's /metrics is asked for and listed: `esper serve` flags, ServerConfig, mesh.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.cli.main import build_parser, main
from esper.errors import InvalidArgument
from esper.mesh.addresses import addresses_from_document
from esper.mesh.config import ServerConfig


def test_metrics_are_on_by_default_on_a_free_port() -> None:
    args = build_parser().parse_args(["serve", "karn"])
    assert (args.metrics_port, args.no_metrics, args.metrics_port_file) == (0, False, None)


def test_metrics_flags_parse() -> None:
    args = build_parser().parse_args(
        ["serve", "karn", "--metrics-port", "9454", "--metrics-port-file", "/tmp/karn.metrics.port"]
    )
    assert (args.metrics_port, args.metrics_port_file) == (9454, Path("/tmp/karn.metrics.port"))
    assert build_parser().parse_args(["serve", "karn", "--no-metrics"]).no_metrics


@pytest.mark.parametrize(
    "flags", [["--metrics-port", "70000"], ["--metrics-port", "x"], ["--metrics-port", "1", "--no-metrics"]]
)
def test_bad_metrics_flags_are_usage_errors(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", "karn", *flags])
    assert raised.value.code == 2
    assert "metrics-port" in capsys.readouterr().err


def test_a_metrics_port_file_without_metrics_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["serve", "karn", "--no-metrics", "--metrics-port-file", "/tmp/never.port"])
    assert raised.value.code == 2
    assert "--metrics-port-file" in capsys.readouterr().err


def test_server_config_checks_the_metrics_port() -> None:
    assert ServerConfig(service_name="karn").metrics_port is None
    assert ServerConfig(service_name="karn", metrics_port=0).metrics_port == 0
    with pytest.raises(ValueError, match="metrics_port"):
        ServerConfig(service_name="karn", metrics_port=65536)


def test_mesh_document_metrics_addresses_are_optional() -> None:
    mesh = addresses_from_document(
        {
            "urza": {"grpc": "127.0.0.1:5001", "metrics": "127.0.0.1:9001", "pid": 10},
            "karn": {"grpc": "127.0.0.1:5002", "pid": 11},
            "tamiyo": "127.0.0.1:5003",
            "nats": {"url": "nats://127.0.0.1:4222", "pid": 12},
        }
    )
    assert dict(mesh.metrics) == {"urza": "127.0.0.1:9001"}
    assert mesh.address("karn") == "127.0.0.1:5002"


@pytest.mark.parametrize("bad", ["", 9001, ["127.0.0.1:9001"]])
def test_a_malformed_metrics_address_names_the_server(bad: object) -> None:
    with pytest.raises(InvalidArgument) as raised:
        addresses_from_document({"urza": {"grpc": "127.0.0.1:5001", "metrics": bad}})
    assert "urza" in str(raised.value) and "metrics" in str(raised.value)
