"""What a caller with a certificate can still attempt, refused: the alias bomb, run folders and data
outside the server's roots, forged field reports over gRPC, an oversized span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from esper.cli.main import main
from esper.clients import KarnClient, SimicClient, TolariaClient
from esper.errors import InvalidArgument, PermissionDenied
from esper.karn.config import KarnConfig
from esper.karn.service import KarnService
from esper.leyline.v1 import karn_pb2, run_pb2, simic_pb2, tolaria_pb2
from esper.leyline.v1.services import KARN_SERVICE, SIMIC_SERVICE, TOLARIA_SERVICE
from esper.mesh.hosting import host
from esper.mesh.tls import secure_channel
from esper.nissa.config import SpanStoreConfig, database_url
from esper.nissa.spans import RUN_ID, SpanStore
from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake
from esper.simic.config import SimicConfig
from esper.simic.service import SimicService
from esper.tolaria.runs import RunManager, RunManagerConfig
from tests.security.conftest import Pki, TlsServerFactory
from tests.support.crafted import alias_bomb
from tests.support.field_reports import field_reports
from tests.support.otlp import export_request, otlp_span


@pytest.fixture
def tolaria(tls_server: TlsServerFactory, tmp_path: Path) -> Iterator[tuple[str, RunManager, Path]]:
    roots = RunManagerConfig(runs_dir=tmp_path / "runs", data_root=tmp_path / "data", assets_root=tmp_path / "assets")
    manager = RunManager(roots)
    server = tls_server([host(TOLARIA_SERVICE.bind(manager))], "tolaria")
    yield server.address, manager, tmp_path
    manager.close()


def _create(address: str, pki: Pki, **fields: object) -> run_pb2.Run:
    with TolariaClient(pki.client(address, "operator", max_attempts=1)) as client:
        values: dict[str, object] = {"dataset": "digits", "epochs": 1, "static": True, **fields}
        config = run_pb2.RunConfig(**values)  # type: ignore[arg-type]
        return client.create_run(tolaria_pb2.CreateRunRequest(config=config)).run


def test_the_alias_bomb_is_refused_at_once_and_quoted_short(tolaria: tuple[str, RunManager, Path], pki: Pki) -> None:
    address, manager, _ = tolaria
    bomb = alias_bomb()
    assert len(bomb.encode()) < 1024
    with pytest.raises(InvalidArgument) as refused:
        _create(address, pki, config_yaml=bomb)
    assert refused.value.violations[0].field == "config.config_yaml"
    assert "anchors are not accepted" in refused.value.message and len(refused.value.message) < 600
    assert manager.list_runs(tolaria_pb2.ListRunsRequest()).runs == []


def test_esper_run_refuses_the_alias_bomb_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(alias_bomb())
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "--static"]) == 1
    error = capsys.readouterr().err
    assert "config" in error and "anchors are not accepted" in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"out_dir": "/etc/esper-run"}, "config.out_dir"),
        ({"out_dir": "../../escape"}, "config.out_dir"),
        ({"config_yaml": "run:\n  out: /root/.ssh\n"}, "config.config_yaml"),
        ({"dataset": "npz:/etc/passwd"}, "config.dataset"),
        ({"dataset": "npz:../../../etc/passwd"}, "config.dataset"),
        ({"config_yaml": "assets:\n  data_dir: /tmp/elsewhere\n"}, "config.config_yaml"),
    ],
)
def test_paths_outside_the_server_roots_are_refused(
    tolaria: tuple[str, RunManager, Path], pki: Pki, fields: dict[str, object], field: str
) -> None:
    address, _, _ = tolaria
    with pytest.raises(InvalidArgument, match="outside") as refused:
        _create(address, pki, **fields)
    assert refused.value.violations[0].field == field
    # The message names the server's root, not whether the path exists.
    assert "no such file" not in refused.value.message


def test_npz_existence_outside_the_data_root_is_not_revealed(tolaria: tuple[str, RunManager, Path], pki: Pki) -> None:
    address, _, _ = tolaria
    messages = []
    for path in ("/etc/passwd", "/no/such/file.npz"):
        with pytest.raises(InvalidArgument) as refused:
            _create(address, pki, dataset=f"npz:{path}")
        messages.append(refused.value.message.replace(path, "PATH"))
    assert messages[0] == messages[1]


def test_forged_field_reports_over_grpc_are_denied(tls_server: TlsServerFactory, pki: Pki, tmp_path: Path) -> None:
    simic = SimicService.open(SimicConfig(data_dir=str(tmp_path / "simic")))
    karn = KarnService.default(KarnConfig())
    simic_address = tls_server([host(SIMIC_SERVICE.bind(simic))], "simic").address
    karn_address = tls_server([host(KARN_SERVICE.bind(karn))], "karn").address
    reports = field_reports(2)
    for forger in ("operator", "karn", "nissa"):
        with SimicClient(pki.client(simic_address, forger)) as client, pytest.raises(PermissionDenied):
            client.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=reports))
        with KarnClient(pki.client(karn_address, forger)) as client, pytest.raises(PermissionDenied):
            client.submit_field_reports(karn_pb2.SubmitFieldReportsRequest(reports=reports))
    with SimicClient(pki.client(simic_address, "operator")) as client:
        assert list(client.list_field_reports(simic_pb2.ListFieldReportsRequest()).reports) == []
    # The bus-facing roles are heard.
    with SimicClient(pki.client(simic_address, "tolaria")) as client:
        client.record_field_reports(simic_pb2.RecordFieldReportsRequest(reports=reports))
    simic.close()


def test_an_oversized_span_is_cut_and_an_oversized_export_refused(tls_server: TlsServerFactory, pki: Pki) -> None:
    import grpc

    store = SpanStore.open(SpanStoreConfig(url=database_url(":memory:")))
    address = tls_server([host(TRACE_SERVICE.bind(SpanIntake(store)))], "nissa").address
    attributes = {RUN_ID: "oversized", **{f"k{i}": "v" for i in range(14_000)}}
    span = otlp_span(1, 1, name="n" * 5_000_000, attributes=attributes)
    with secure_channel(address, pki.identity("tamiyo")) as channel:
        export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
        export(export_request(("svc", [span])), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            export(export_request(("svc", [otlp_span(2, n, name="x" * 1_000_000) for n in range(1, 20)])), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ((stored,),) = [trace.spans for trace in store.find_traces(run_id="oversized")]
    assert len(stored.name) == 256 and len(stored.attributes) == 128
    assert store.count() == 1
    store.close()
