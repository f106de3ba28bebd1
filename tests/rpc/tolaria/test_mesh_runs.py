"""Runs trained through mesh services (Urza and Tamiyo over gRPC, in-process servers), and their faults.

Urza here is an embedded asset pipeline (hub, compile worker, validator) served
over gRPC, so kernels are real and compiled once for the module. Tamiyo is a real
TamiyoController served over gRPC, started, stopped and restarted by the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from esper.assets.config import AssetsConfig
from esper.assets.embedded import EmbeddedAssets
from esper.clients import UrzaClient
from esper.clients.base import ClientConfig
from esper.config import EsperConfig, parse_config
from esper.leyline.v1 import lifecycle_pb2, tamiyo_pb2
from esper.leyline.v1.services import TAMIYO_SERVICE, URZA_SERVICE
from esper.mesh.addresses import MeshAddresses
from esper.mesh.config import ServerConfig
from esper.mesh.hosting import host
from esper.tamiyo.controller import TamiyoController
from esper.tolaria.collaborators import RunCollaborators
from esper.tolaria.mesh_collaborators import MeshCollaborators, RemoteTamiyo
from esper.tolaria.session import RunResult, run_training
from esper.tolaria.trainer import EpochRecord, TrainingHistory
from esper.trust.kernel_signing import TrustedSigners
from tests.support.servers import ServerThread

TEMPLATE = "conv3x3_relu"
FAST = {
    "kasmina": {"ramp_steps": 10, "training_min_steps": 5, "stabilization_steps": 5, "fine_tuning_min_steps": 5},
    "tamiyo": {
        "warmup_epochs": 1,
        "patience": 1,
        "min_delta": 0.5,
        "min_epochs_to_finish": 1,
        "min_eval_gain": -1.0,
        "fossilize_min_improvement": 0.0,
        "harm_threshold": 1.0,
    },
}


@dataclasses.dataclass
class Mesh:
    assets_dir: Path
    assets: EmbeddedAssets
    urza: ServerThread

    def config(self, out: Path, epochs: int, seed: int = 3, templates: tuple[str, ...] = (TEMPLATE,)) -> EsperConfig:
        # The deterministic mode: the mesh run and its embedded twin see the same kernels.
        assets = {
            "data_dir": str(self.assets_dir),
            "template_ids": list(templates),
            "pipelines": ["standard"],
            "wait_for_kernels": True,
        }
        data = {**FAST, "assets": assets}
        return parse_config(
            yaml.safe_dump(data), {"run.dataset": "digits", "run.epochs": epochs, "run.seed": seed, "run.out": str(out)}
        )

    def tamiyo(self, port: int = 0) -> ServerThread:
        urza = UrzaClient(ClientConfig(address=self.urza.address, deadline_seconds=5.0))
        controller = TamiyoController(None, self.config(Path("/unused"), 1).tamiyo, kernels=urza)
        return ServerThread(
            [host(TAMIYO_SERVICE.bind(controller))], ServerConfig(service_name="tamiyo", port=port, grace_seconds=0.0)
        )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mesh-runs")
    assets = EmbeddedAssets(
        AssetsConfig(data_dir=str(root / "assets"), template_ids=(TEMPLATE,), pipelines=("standard",))
    )
    assets.start()
    urza = ServerThread([host(URZA_SERVICE.bind(assets.urza))], ServerConfig(service_name="urza", grace_seconds=0.0))
    try:
        yield Mesh(root / "assets", assets, urza)
    finally:
        urza.stop()
        assets.stop()


def _services(urza: ServerThread, tamiyo: ServerThread | str, trust: TrustedSigners) -> MeshCollaborators:
    tamiyo_address = tamiyo if isinstance(tamiyo, str) else tamiyo.address
    return MeshCollaborators(MeshAddresses(grpc={"urza": urza.address, "tamiyo": tamiyo_address}), trust=trust)


def _transitions(result: RunResult) -> list[dict[str, Any]]:
    from esper.tolaria.runfolder import RunFolder

    return [e["seed_transition"] for e in RunFolder(result.out_dir).read_events() if e["kind"] == "seed_transition"]


def _notices(result: RunResult) -> list[str]:
    from esper.tolaria.runfolder import RunFolder

    return [e["notice"] for e in RunFolder(result.out_dir).read_events() if e["kind"] == "notice"]


def test_a_mesh_run_repeats_the_embedded_run_of_the_same_seed(mesh: Mesh, tmp_path: Path) -> None:
    tamiyo = mesh.tamiyo()
    try:
        remote = run_training(
            mesh.config(tmp_path / "mesh", epochs=5), collaborators=_services(mesh.urza, tamiyo, mesh.assets.trust)
        )
    finally:
        tamiyo.stop()
    embedded = run_training(mesh.config(tmp_path / "embedded", epochs=5))
    assert remote.summary["seeds_germinated"] >= 1, "the comparison should cover a grown model"
    assert remote.summary["final_test_accuracy"] == embedded.summary["final_test_accuracy"]
    assert remote.summary["params_final"] == embedded.summary["params_final"]
    # Reasons quote measured kernel latencies; the transitions themselves must match.
    moves = [
        [(t["seed_id"], t["from_stage"], t["to_stage"], t["epoch"]) for t in _transitions(result)]
        for result in (remote, embedded)
    ]
    assert moves[0] == moves[1]


@pytest.mark.slow
def test_a_mesh_run_that_widens_and_regrows_repeats_the_embedded_run(mesh: Mesh, tmp_path: Path) -> None:
    templates = (TEMPLATE, "widen_conv3_k2")
    tamiyo = mesh.tamiyo()
    try:
        remote = run_training(
            mesh.config(tmp_path / "mesh", epochs=12, templates=templates),
            collaborators=_services(mesh.urza, tamiyo, mesh.assets.trust),
        )
    finally:
        tamiyo.stop()
    embedded = run_training(mesh.config(tmp_path / "embedded", epochs=12, templates=templates))
    moves = [
        [(t["seed_id"], t.get("from_stage"), t["to_stage"], t["epoch"]) for t in _transitions(result)]
        for result in (remote, embedded)
    ]
    fossils = [seed for seed, _, to, _ in moves[0] if to == "SEED_STAGE_FOSSILIZED"]
    assert any(seed.startswith("w:") for seed in fossils), moves[0]
    assert any("/" in seed for seed, _, _, _ in moves[0]), "a fossilized site should have grown a child"
    assert moves[0] == moves[1]
    assert remote.summary["final_test_accuracy"] == embedded.summary["final_test_accuracy"]
    assert remote.summary["params_final"] == embedded.summary["params_final"]


class UrzaDiesOnGermination:
    """Tamiyo as the trainer sees it, except that Urza stops right after Tamiyo orders a germination."""

    def __init__(self, remote: RemoteTamiyo, stop_urza: Callable[[], None]) -> None:
        self._remote = remote
        self._stop_urza = stop_urza
        self.germinations: list[str] = []

    def step(self, request: tamiyo_pb2.StepRequest) -> tamiyo_pb2.StepResponse:
        response = self._remote.step(request)
        germinating = [
            c.kernel_id for c in response.commands if c.command_type == lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION
        ]
        if germinating and not self.germinations:
            self.germinations.extend(germinating)
            self._stop_urza()
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._remote, name)


def test_urza_down_during_a_germination_culls_the_seed_with_the_reason_and_the_run_goes_on(
    mesh: Mesh, tmp_path: Path
) -> None:
    # An Urza of its own over the same hub, so stopping it leaves the module's Urza up (Tamiyo uses that one).
    doomed = ServerThread([host(URZA_SERVICE.bind(mesh.assets.urza))], ServerConfig(service_name="urza-doomed"))
    tamiyo = mesh.tamiyo()
    controllers: list[UrzaDiesOnGermination] = []
    services = _services(doomed, tamiyo, mesh.assets.trust)

    def factory(config: EsperConfig) -> RunCollaborators:
        run = services(config)

        def make_controller(model: Any) -> UrzaDiesOnGermination:
            controllers.append(UrzaDiesOnGermination(run.make_controller(model), doomed.stop))
            return controllers[-1]

        return dataclasses.replace(run, make_controller=make_controller)

    try:
        result = run_training(mesh.config(tmp_path / "run", epochs=5), collaborators=factory)
    finally:
        doomed.stop()
        tamiyo.stop()
    assert result.summary["epochs"] == 5, "the run went on to its last epoch"
    germinated = controllers[0].germinations
    assert germinated
    culls = [t for t in _transitions(result) if t["to_stage"] == "SEED_STAGE_CULLED"]
    assert culls, "the seed whose kernel could not load was culled"
    assert f"kernel {germinated[0]} failed to load" in culls[0]["reason"]
    assert "connect" in culls[0]["reason"].lower(), "the reason says Urza could not be reached"
    assert result.summary["seeds_culled"] >= 1 and result.summary["params_final"] == result.summary["params_initial"]


def test_tamiyo_down_runs_conservatively_until_it_is_back(mesh: Mesh, tmp_path: Path) -> None:
    tamiyo = mesh.tamiyo()
    port = tamiyo.port
    tamiyo.stop()
    services = _services(mesh.urza, f"127.0.0.1:{port}", mesh.assets.trust)
    controllers: list[RemoteTamiyo] = []

    def factory(config: EsperConfig) -> RunCollaborators:
        run = services(config)
        controllers.append(run.make_controller(None))
        return dataclasses.replace(run, make_controller=lambda model: controllers[0])

    restarted: list[ServerThread] = []
    back_at = 2

    def bring_tamiyo_back(record: EpochRecord, history: TrainingHistory) -> None:
        if record.metrics.epoch == back_at:
            restarted.append(mesh.tamiyo(port))
            # The run's own channel reconnects on its backoff (at most 2 s): wait for it, not for a time.
            assert controllers[0].wait_for_connection(30.0)

    try:
        result = run_training(
            mesh.config(tmp_path / "run", epochs=7), collaborators=factory, on_epoch=bring_tamiyo_back
        )
    finally:
        for server in restarted:
            server.stop()
    unavailable = [n for n in _notices(result) if "Tamiyo unavailable (" in n]
    assert [n.split(":")[0] for n in unavailable] == [f"epoch {e}" for e in range(back_at + 1)]
    assert all("running conservatively" in n for n in unavailable)
    germinations = [t for t in _transitions(result) if t["to_stage"] == "SEED_STAGE_GERMINATED"]
    assert germinations and all(t["epoch"] > back_at for t in germinations)
    assert result.summary["epochs"] == 7
