"""`esper traces` against a served Nissa: JSON with every span's ids, names and service, a tree in
text mode, and errors that name the flag. One test runs the real `esper serve nissa` process."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from esper.cli.main import main
from esper.leyline.v1.services import NISSA_SERVICE
from esper.mesh.addresses import write_mesh
from esper.mesh.hosting import host
from esper.nissa.config import SpanStoreConfig, database_url
from esper.nissa.service import NissaService
from esper.nissa.spans import RUN_ID, SpanStore
from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake
from tests.support.otlp import export_request, otlp_span, span_id, trace_id
from tests.support.servers import EsperServeProcess, ServerFactory


@pytest.fixture
def mesh_file(grpc_server: ServerFactory, tmp_path: Path) -> Path:
    """A mesh.json whose Nissa holds one trace of run-1 (tamiyo decides, kasmina grafts, urza serves)."""
    store = SpanStore.open(SpanStoreConfig(url=database_url(":memory:")))
    intake = SpanIntake(store)
    intake.export(
        export_request(
            ("tamiyo", [otlp_span(1, 1, name="decide", duration=100, attributes={RUN_ID: "run-1"})]),
            ("kasmina", [otlp_span(1, 2, parent=1, name="graft", start=10, duration=50)]),
            ("urza", [otlp_span(1, 3, parent=2, name="GetKernel", start=20, duration=5)]),
        )
    )
    server = grpc_server([host(NISSA_SERVICE.bind(NissaService(store))), host(TRACE_SERVICE.bind(intake))])
    path = tmp_path / "mesh.json"
    write_mesh(path, {"nissa": {"grpc": server.address}, "urza": "127.0.0.1:1"})
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lists_each_trace_with_its_spans_services_names_and_parents(
    mesh_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "traces", "--mesh", str(mesh_file), "--run", "run-1", "--json")
    assert code == 0
    [found] = json.loads(out)["traces"]
    assert found["trace_id"] == trace_id(1).hex()
    assert [(s["name"], s["service_name"], s["span_id"], s["parent_span_id"]) for s in found["spans"]] == [
        ("decide", "tamiyo", span_id(1).hex(), ""),
        ("graft", "kasmina", span_id(2).hex(), span_id(1).hex()),
        ("GetKernel", "urza", span_id(3).hex(), span_id(2).hex()),
    ]
    first = found["spans"][0]
    assert first["attributes"] == {RUN_ID: "run-1"}
    assert set(first) == {"span_id", "parent_span_id", "name", "service_name", "start_time", "end_time", "attributes"}
    assert first["start_time"].endswith("Z")
    code, out, _ = _run(capsys, "traces", "--mesh", str(mesh_file), "--run", "run-2", "--json")
    assert (code, json.loads(out)) == (0, {"traces": []})


def test_text_shows_children_indented_under_their_parents_with_the_service(
    mesh_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "traces", "--mesh", str(mesh_file), "--run", "run-1")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"trace {trace_id(1).hex()}  (3 spans)"
    assert lines[1].startswith("  decide  [tamiyo]  0.000 ms")
    assert lines[2].startswith("    graft  [kasmina]")
    assert lines[3].startswith("      GetKernel  [urza]")


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--run", "run-1", "--limit", "5000"], "--limit"),
        (["--seed", "s" * 300], "--seed"),
        (["--command", ""], "--run/--seed/--command"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_its_flag(
    mesh_file: Path, capsys: pytest.CaptureFixture[str], flags: list[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["traces", "--mesh", str(mesh_file), *flags])
    assert raised.value.code == 2
    assert f"esper traces: error: {flag}" in capsys.readouterr().err


def test_a_mesh_without_nissa_is_a_usage_error_naming_mesh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mesh.json"
    write_mesh(path, {"urza": "127.0.0.1:1"})
    for mesh in (path, tmp_path / "missing.json"):
        with pytest.raises(SystemExit) as raised:
            main(["traces", "--mesh", str(mesh), "--run", "r"])
        assert raised.value.code == 2
        assert "esper traces: error: --mesh" in capsys.readouterr().err


def _export_germination(port: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "tolaria"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10))
    )
    tracer = provider.get_tracer("esper.test")
    with (
        tracer.start_as_current_span("epoch", attributes={RUN_ID: "run-s"}),
        tracer.start_as_current_span("hook"),
    ):
        pass
    provider.shutdown()


def test_esper_serve_nissa_receives_otlp_and_esper_traces_prints_it(
    esper_serve: Callable[..., EsperServeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web_port_file = tmp_path / "web.port"
    nissa = esper_serve(
        "nissa", "--db", str(tmp_path / "spans.db"), "--max-spans", "100", "--web-port-file", str(web_port_file)
    )
    _export_germination(nissa.port)
    mesh = tmp_path / "mesh.json"
    write_mesh(mesh, {"nissa": nissa.address})
    code, out, _ = _run(capsys, "traces", "--mesh", str(mesh), "--run", "run-s", "--json")
    assert code == 0
    [found] = json.loads(out)["traces"]
    spans: list[dict[str, Any]] = found["spans"]
    assert [(s["name"], s["service_name"]) for s in spans] == [("epoch", "tolaria"), ("hook", "tolaria")]
    assert spans[1]["parent_span_id"] == spans[0]["span_id"]
    # Mission control is up once the gRPC port is known.
    page = urllib.request.urlopen(f"http://127.0.0.1:{int(web_port_file.read_text())}/", timeout=30)
    assert page.status == 200
    assert nissa.stop() == 0
    assert not web_port_file.exists()
