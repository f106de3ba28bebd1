"""A run never waits for a compiler: with no kernel ever validated it trains every epoch and says why
nothing germinated; its blueprints were named to the compile workers in the order Tamiyo would take them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from esper.assets.embedded import EmbeddedAssets
from esper.config import EsperConfig, config_from_dict
from esper.ir import growth_kind
from esper.leyline.v1 import blueprint_pb2, urza_pb2
from esper.tamiyo import TamiyoController
from esper.tolaria.collaborators import RunCollaborators
from esper.tolaria.runfolder import RunFolder
from esper.tolaria.session import run_training

pytestmark = pytest.mark.integration

EPOCHS = 4


def _config(tmp_path: Path) -> EsperConfig:
    return config_from_dict(
        {
            "run": {"dataset": "digits", "epochs": EPOCHS, "seed": 3, "out": str(tmp_path / "run")},
            "assets": {"data_dir": str(tmp_path / "assets")},
            "tamiyo": {"warmup_epochs": 1, "patience": 1, "min_delta": 0.5, "min_epochs_to_finish": 1},
        }
    )


class IdleAssets:
    """The embedded asset pipeline with no compile or validation worker: no kernel is ever validated."""

    def __init__(self) -> None:
        self.prioritized: list[str] = []

    def __call__(self, config: EsperConfig) -> RunCollaborators:
        assets = EmbeddedAssets(config.assets)

        def prioritize(blueprint_ids: Sequence[str]) -> None:
            self.prioritized = list(blueprint_ids)
            assets.prioritize(blueprint_ids)

        return RunCollaborators(
            urza=assets.urza,
            kernel_cache=assets.kernel_cache,
            make_controller=lambda model: TamiyoController(model, config.tamiyo, kernels=assets.urza),
            publish=lambda telemetry, reports: None,
            prefetch=assets.prefetch,
            close=assets.stop,
            prioritize=prioritize,
        )


def test_a_run_trains_every_epoch_while_no_kernel_is_ready(tmp_path: Path) -> None:
    idle = IdleAssets()
    result = run_training(_config(tmp_path), collaborators=idle)
    summary = result.summary
    assert summary["epochs"] == EPOCHS and summary["seeds_germinated"] == 0
    assert summary["first_germination_epoch"] is None
    assert summary["asset_wait_seconds"] >= 0
    reasons = [e["decision"]["reason"] for e in RunFolder(result.out_dir).read_events() if e["kind"] == "decision"]
    assert any("no validated kernel" in reason for reason in reasons), reasons

    # Every blueprint the run submitted was named to the compile workers, widening first
    # (the digits host has width sites), and nothing was compiled.
    hub = EmbeddedAssets(_config(tmp_path).assets).urza
    try:
        listed = hub.list_blueprints(urza_pb2.ListBlueprintsRequest(page_size=1000)).blueprints
        first = hub.get_blueprint(urza_pb2.GetBlueprintRequest(blueprint_id=idle.prioritized[0])).blueprint
    finally:
        hub.close()
    assert sorted(idle.prioritized) == sorted(b.blueprint_id for b in listed)
    assert growth_kind(first.ir) == blueprint_pb2.GROWTH_KIND_WIDTH
    assert all(b.status == blueprint_pb2.BLUEPRINT_STATUS_SUBMITTED for b in listed)
