"""Random requests to every rpc of every service, built from the contracts' descriptors: none answers
INTERNAL (every refusal is a domain error naming what was wrong) and the server keeps serving.

All services run in one real server over plaintext, so every request reaches its handler (the
authorization check is tested on its own). Training is switched off in this Tolaria: a run that is
accepted fails at once instead of training. `make test` runs a short fuzz; the long one is `slow`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper.karn.config import KarnConfig
from esper.karn.service import KarnService
from esper.leyline.v1 import run_pb2
from esper.leyline.v1.services import (
    KARN_SERVICE,
    KASMINA_SERVICE,
    NISSA_SERVICE,
    SIMIC_SERVICE,
    TAMIYO_SERVICE,
    TEZZERET_SERVICE,
    TOLARIA_SERVICE,
    URABRASK_SERVICE,
)
from esper.mesh.config import ServerConfig
from esper.mesh.hosting import host
from esper.mesh.threaded import ServerThread
from esper.nissa.board import RunBoard
from esper.nissa.config import SpanStoreConfig, database_url
from esper.nissa.service import NissaService
from esper.nissa.spans import SpanStore
from esper.nissa.trace_intake import TRACE_SERVICE, SpanIntake
from esper.simic.config import SimicConfig
from esper.simic.service import SimicService
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.controller import TamiyoController
from esper.tezzeret.service import TezzeretService
from esper.tezzeret.state import WorkerState
from esper.tolaria.runs import RunManager, RunManagerConfig
from esper.trust.access import leyline_methods
from esper.urabrask.service import UrabraskService
from esper.urza.serve import urza_registration
from tests.security.fuzz_messages import draw_message
from tests.support.signing import TEST_TRUST
from tests.support.urza import make_hub

METHODS = sorted(leyline_methods(), key=lambda item: item[0])
CALL_SECONDS = 5.0
# Codes a server may answer a random request with; INTERNAL and UNKNOWN would be a bug.
ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.DATA_LOSS,
}


class NoTraining(RunManager):
    """Tolaria's run manager with every accepted run failing at once instead of training."""

    def _train(self, entry: Any) -> None:
        self._finish(entry, run_pb2.RUN_STATUS_FAILED, None, "training is off in the fuzz test")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    hub = make_hub(f"sqlite:///{root / 'urza.db'}", root / "store", trust=TEST_TRUST)
    store = SpanStore.open(SpanStoreConfig(url=database_url(":memory:")))
    simic = SimicService.open(SimicConfig(data_dir=str(root / "simic")))
    runs = NoTraining(RunManagerConfig(runs_dir=root / "runs", data_root=root / "data", assets_root=root / "assets"))
    registrations = [
        urza_registration(hub, download_deadline_seconds=CALL_SECONDS),
        host(
            TEZZERET_SERVICE.bind(
                TezzeretService(WorkerState("fuzz", "0" * 64, recent_limit=10, conservative_threshold=8))
            )
        ),
        host(URABRASK_SERVICE.bind(UrabraskService(hub))),
        host(KARN_SERVICE.bind(KarnService.default(KarnConfig()))),
        host(TAMIYO_SERVICE.bind(TamiyoController(None, TamiyoConfig(), kernels=hub))),
        host(SIMIC_SERVICE.bind(simic)),
        host(NISSA_SERVICE.bind(NissaService(store, RunBoard().summary))),
        host(TRACE_SERVICE.bind(SpanIntake(store))),
        host(TOLARIA_SERVICE.bind(runs)),
        host(KASMINA_SERVICE.bind(runs.kasmina)),
    ]
    started = ServerThread(registrations, ServerConfig(service_name="fuzz", grace_seconds=0.0))
    yield started
    started.stop()
    runs.close()
    simic.close()
    store.close()
    hub.close()


def _call(channel: grpc.Channel, path: str, method: MethodDescriptor, request: bytes) -> grpc.StatusCode:
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(request, timeout=CALL_SECONDS)
            for _ in stream:
                pass
        else:
            channel.unary_unary(path)(request, timeout=CALL_SECONDS)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _fuzz(server: ServerThread, path: str, method: MethodDescriptor, examples: int) -> None:
    request_class = message_factory.GetMessageClass(method.input_type)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.data())
    def one_request(data: st.DataObject) -> None:
        request = draw_message(data.draw, request_class)
        with grpc.insecure_channel(server.address) as channel:
            code = _call(channel, path, method, request.SerializeToString())
        assert code in ACCEPTABLE, f"{path} answered {code.name} to {request}"

    one_request()
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_SECONDS)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("path", "method"), METHODS, ids=[path for path, _ in METHODS])
def test_random_requests_never_answer_internal(server: ServerThread, path: str, method: MethodDescriptor) -> None:
    _fuzz(server, path, method, examples=12)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), METHODS, ids=[path for path, _ in METHODS])
def test_many_random_requests_never_answer_internal(server: ServerThread, path: str, method: MethodDescriptor) -> None:
    _fuzz(server, path, method, examples=300)
