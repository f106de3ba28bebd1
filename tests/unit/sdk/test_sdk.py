"""The SDK over a user's own model, loader, loss and metric: Trainer, Session, save/load, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import esper
from esper.errors import FailedPrecondition, InvalidArgument
from esper.kasmina import KasminaOperator, MorphableModel
from esper.kasmina import lifecycle as lc
from tests.support.kasmina import CATALOG, RUN_ID, FakeKernelSource, bring_to, template_ir


class TwoLayer(nn.Module):
    """A user's own classifier: functional activations, layers in a ModuleList-free module."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _loaders(rows: int = 192) -> tuple[DataLoader[Any], DataLoader[Any]]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(rows, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    train = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=32, shuffle=True, generator=generator)
    val = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=64)
    return train, val


def test_a_static_trainer_fits_a_user_model_with_a_lower_is_better_metric(tmp_path: Path) -> None:
    train, val = _loaders()

    def mean_loss(out: Tensor, y: Tensor) -> Tensor:
        return nn.functional.cross_entropy(out, y)

    result = esper.Trainer(
        TwoLayer(),
        train,
        val,
        loss_fn=nn.functional.cross_entropy,
        metric=(mean_loss, False),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        epochs=4,
        policy="static",
        device="cpu",
        out=tmp_path / "run",
    ).fit()
    losses = [epoch["val_metric"] for epoch in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert result.summary["metric_direction"] == "METRIC_DIRECTION_LOWER_IS_BETTER"
    assert result.summary["best_val_metric"] == pytest.approx(min(losses))
    # The run ends with its best validated state: the lowest loss, not the highest.
    assert result.summary["saved"]["val_metric"] == pytest.approx(min(losses))
    assert (tmp_path / "run" / "summary.json").is_file() and (tmp_path / "run" / "report.png").is_file()
    assert isinstance(result.model, MorphableModel) and not result.model.seed_list()


def test_a_growing_trainer_germinates_with_validated_kernels(tmp_path: Path) -> None:
    """Trainer over the embedded services of esper run, with a stand-in Urza whose kernels are ready."""
    from tests.unit.tolaria.harness import TAMIYO

    train, val = _loaders()
    config = esper.load_config(
        overrides={
            "kasmina.ramp_steps": 4,
            "kasmina.training_min_steps": 4,
            "kasmina.stabilization_steps": 2,
            "kasmina.fine_tuning_min_steps": 2,
            "kasmina.width_seeds": False,
            "assets.wait_for_kernels": False,
            "assets.data_dir": str(tmp_path / "assets"),
            "tamiyo": {
                "warmup_epochs": TAMIYO.warmup_epochs,
                "patience": TAMIYO.patience,
                "min_delta": TAMIYO.min_delta,
                "max_concurrent_seeds": 1,
                "min_training_epochs": 1,
                "fine_tune_epochs": 1,
                "min_eval_gain": -1.0,
                "fossilize_min_improvement": 0.0,
                "harm_threshold": 1.0,
                "min_epochs_to_finish": 1,
                "growth_step_fraction": 8.0,
                "max_seed_parameter_fraction": 8.0,
            },
        }
    )
    services = _services_with_ready_kernels(tmp_path)
    from esper.sdk.run import SdkRun

    run = SdkRun(
        TwoLayer(),
        train,
        val,
        loss_fn=None,
        metric=None,
        optimizer=None,
        epochs=8,
        policy="heuristic-v1",
        device="cpu",
        out=None,
        config=config,
        test_data=val,
        example_input=None,
        seed=0,
        services=services,
    )
    _, history = run.trainer.train()
    result = run.finish(history)
    stages = set().union(*(epoch["seed_stages"].values() for epoch in result.history))
    assert "TRAINING" in stages or "FOSSILIZED" in stages
    assert result.summary["seeds_germinated"] >= 1
    assert result.summary["metric_name"] == "accuracy" and 0.0 <= result.summary["final_test_accuracy"] <= 1.0


def test_a_session_inside_your_own_loop(tmp_path: Path) -> None:
    train, val = _loaders()
    session = esper.Session(
        TwoLayer(), val, epochs=3, device="cpu", out=tmp_path / "run", config=_quiet_config(tmp_path)
    )
    model, optimizer = session.model, session.optimizer
    records = []
    for _ in range(3):
        for x, y in train:
            optimizer.zero_grad()
            outputs = model(x)
            loss = nn.functional.cross_entropy(outputs, y)
            loss.backward()
            optimizer.step()
            session.step(loss, outputs, y)
        records.append(session.end_epoch())
    result = session.finish()
    assert [record["epoch"] for record in records] == [0, 1, 2]
    assert not any(record["rolled_back"] for record in records)
    assert all(0.0 <= record["train_metric"] <= 1.0 for record in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert [epoch["val_metric"] for epoch in result.history] == [record["val_metric"] for record in records]
    assert model.global_step == 12
    with pytest.raises(FailedPrecondition):
        session.step(torch.tensor(1.0))


def test_a_non_finite_epoch_in_your_own_loop_is_rolled_back(tmp_path: Path) -> None:
    # With no seed blending in, only a non-finite loss fails an epoch (esper.tolaria.never_worse).
    train, val = _loaders()
    session = esper.Session(TwoLayer(), val, epochs=4, device="cpu", config=_quiet_config(tmp_path))
    model, optimizer = session.model, session.optimizer
    for epoch in range(3):
        for x, y in train:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            session.step(loss * (float("nan") if epoch == 2 else 1.0))
        record = session.end_epoch()
    assert record["rolled_back"] is True
    assert session.finish().summary["rollbacks"] == 1


def test_bad_arguments_are_refused_naming_the_argument() -> None:
    train, val = _loaders()
    with pytest.raises(InvalidArgument) as policy:
        esper.Trainer(TwoLayer(), train, val, epochs=2, policy="greedy")
    assert policy.value.violations[0].field == "policy"
    with pytest.raises(InvalidArgument) as once:
        esper.Trainer(TwoLayer(), (batch for batch in train), val, epochs=2)
    assert once.value.violations[0].field == "train_data" and "re-iterable" in once.value.message
    with pytest.raises(InvalidArgument) as epochs:
        esper.Trainer(TwoLayer(), train, val, epochs=0)
    assert epochs.value.violations[0].field == "run.epochs"
    with pytest.raises(InvalidArgument) as metric:
        esper.Trainer(TwoLayer(), train, val, epochs=1, metric="perplexity").fit()
    assert metric.value.violations[0].field == "metric"
    with pytest.raises(InvalidArgument) as distributed:
        esper.Trainer(TwoLayer(), train, val, epochs=1, distributed="yes")  # type: ignore[arg-type]
    assert distributed.value.violations[0].field == "distributed"


def test_a_session_under_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _, val = _loaders()
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FailedPrecondition, match="one process"):
        esper.Session(TwoLayer(), val, epochs=1)


def test_distributed_true_outside_torchrun_is_refused_naming_torchrun() -> None:
    train, val = _loaders()
    with pytest.raises(InvalidArgument) as alone:
        esper.Trainer(TwoLayer(), train, val, epochs=1, policy="static", distributed=True).fit()
    assert alone.value.violations[0].field == "distributed" and "torchrun" in alone.value.message


def test_cuda_on_a_machine_without_it_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot happen here")
    train, val = _loaders()
    with pytest.raises(FailedPrecondition, match="no CUDA"):
        esper.Trainer(TwoLayer(), train, val, epochs=1, device="cuda").fit()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_a_trainer_on_cuda_keeps_host_seeds_and_batches_there(tmp_path: Path) -> None:
    train, val = _loaders()
    result = esper.Trainer(TwoLayer(), train, val, epochs=2, device="cuda", config=_quiet_config(tmp_path)).fit()
    assert all(p.device.type == "cuda" for p in result.model.parameters())


def test_a_grown_model_of_your_own_class_saves_and_loads_to_the_same_outputs(tmp_path: Path) -> None:
    example = torch.randn(8, 4)
    model = esper.wrap(TwoLayer(), example_input=example)
    assert [d.seed_id for d in model.seed_layout()] == ["w:fc1", "act"]
    source = FakeKernelSource(
        irs={
            "k-mlp": template_ir("mlp_relu_e1", [16], init_seed=3),
            "k-w": CATALOG.instantiate("widen_k4", [4], output_shape=[3], init_seed=5).ir,
        }
    )
    operator = KasminaOperator(model, source, model.config, run_id=RUN_ID)
    bring_to(operator, "act", lc.FOSSILIZED)
    bring_to(operator, "w:fc1", lc.FOSSILIZED, kernel_id="k-w")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    model.eval()
    esper.save_model(model, tmp_path / "saved")
    again = esper.load_model(tmp_path / "saved", host=TwoLayer()).eval()
    with torch.no_grad():
        assert torch.equal(again(example), model(example))
    assert again.host.fc1.out_features == model.host.fc1.out_features


def _quiet_config(tmp_path: Path) -> Any:
    return esper.load_config(overrides={"assets.wait_for_kernels": False, "assets.data_dir": str(tmp_path / "assets")})


def _services_with_ready_kernels(tmp_path: Path) -> Any:
    """esper run's embedded services, with Tamiyo and the kernel cache over a stand-in Urza of ready kernels."""
    from esper.tamiyo import TamiyoController
    from esper.tolaria.collaborators import RunCollaborators
    from tests.support.tamiyo import FakeKernels
    from tests.unit.tolaria.harness import kernel_artifact

    irs = {"k-mlp": template_ir("mlp_relu_e1", [16], init_seed=3)}
    source = FakeKernelSource(irs=irs)
    params = sum(p.numel() for p in source.instantiate("k-mlp").parameters())
    kernels = FakeKernels([kernel_artifact("k-mlp", irs["k-mlp"], params)])

    def make(config: Any) -> RunCollaborators:
        return RunCollaborators(
            urza=_NoBlueprints(),  # type: ignore[arg-type]
            kernel_cache=None,  # type: ignore[arg-type]
            kernel_source=source,
            make_controller=lambda model: TamiyoController(model, config.tamiyo, kernels=kernels),
            publish=lambda telemetry, reports: None,
            prefetch=lambda sites: None,
            close=lambda: None,
        )

    return make


class _NoBlueprints:
    def create_blueprint(self, request: Any) -> Any:
        from esper.leyline.v1 import urza_pb2

        return urza_pb2.CreateBlueprintResponse()
