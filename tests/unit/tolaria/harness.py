"""A small real training setup for Tolaria tests: real Kasmina and Tamiyo, kernels built from IRs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from esper.data import load_dataset
from esper.data.bundle import Dataset
from esper.hosts import build_host, default_host_spec
from esper.kasmina import KasminaOperator, MorphableModel, wrap
from esper.kasmina.config import KasminaConfig
from esper.leyline.v1 import blueprint_pb2, kernel_pb2, tamiyo_pb2
from esper.tamiyo import TamiyoController
from esper.tamiyo.config import TamiyoConfig
from esper.tolaria.config import RunConfig, TolariaConfig
from esper.tolaria.events import RunEventLog
from esper.tolaria.trainer import TolariaTrainer
from tests.support.kasmina import CATALOG, FakeKernelSource, template_ir
from tests.support.tamiyo import FakeKernels

RUN_ID = "run-tolaria-test"
WIDTH = 16
KASMINA = KasminaConfig(
    target_module_types=("ReLU",),
    ramp_steps=8,
    training_min_steps=8,
    stabilization_steps=4,
    fine_tuning_min_steps=4,
    isolation_check_every=5,
)
TAMIYO = TamiyoConfig(
    warmup_epochs=1,
    patience=1,
    min_delta=0.5,
    max_concurrent_seeds=2,
    min_training_epochs=1,
    fine_tune_epochs=1,
    min_eval_gain=-1.0,
    fossilize_min_improvement=0.0,
    harm_threshold=1.0,
    min_epochs_to_finish=1,
)


def spirals() -> Dataset:
    return load_dataset("spirals", seed=0)


def kernel_artifact(kernel_id: str, ir: blueprint_pb2.BlueprintIR, params: int) -> kernel_pb2.KernelArtifact:
    artifact = kernel_pb2.KernelArtifact(
        kernel_id=kernel_id,
        blueprint_id=f"bp-{kernel_id}",
        status=kernel_pb2.KERNEL_STATUS_VALIDATED,
        tags=["numerically_stable"],
        input_kind=ir.input_kind,
        parameter_count=params,
        hardware_target="cpu_test",
    )
    artifact.input_shape.CopyFrom(ir.input_shape)
    artifact.growth_kind = ir.growth_kind
    artifact.output_shape.CopyFrom(ir.output_shape)
    artifact.validation_report.passed = True
    artifact.validation_report.latency_ms_mean = 0.05
    return artifact


@dataclass
class Setup:
    """One run's objects; `trainer(...)` builds the Tolaria trainer over them."""

    data: Dataset
    model: MorphableModel
    operator: KasminaOperator
    controller: Any
    source: FakeKernelSource
    events: RunEventLog = field(default_factory=lambda: RunEventLog(RUN_ID))

    def trainer(self, epochs: int, *, checkpoint: Path | None = None, **config: Any) -> TolariaTrainer:
        return TolariaTrainer(
            self.model,
            self.controller,
            RunConfig(epochs=epochs, batch_size=64, learning_rate=1e-2, seed=0),
            TolariaConfig(**config),
            data=self.data,
            kasmina=self.operator,
            run_id=RUN_ID,
            events=self.events,
            checkpoint_path=checkpoint,
        )


def setup(*, controller: Any = None, tamiyo: TamiyoConfig = TAMIYO, widen: bool = False) -> Setup:
    """Spirals on an MLP of width 16; `widen` adds width seeds and "add 4 units" kernels for them."""
    data = spirals()
    spec = default_host_spec(data.input_kind, data.input_shape, data.num_classes, WIDTH, init_seed=0)
    kasmina = dataclasses.replace(KASMINA, width_seeds=widen)
    model = wrap(build_host(spec), kasmina, example_input=data.x_train[:2])
    irs = {"k-mlp": template_ir("mlp_relu_e1", [WIDTH], init_seed=3)}
    if widen:
        irs["k-w1"] = CATALOG.instantiate("widen_k4", [2], output_shape=[WIDTH], init_seed=5).ir
        irs["k-w2"] = CATALOG.instantiate("widen_k4", [WIDTH], output_shape=[3], init_seed=5).ir
    source = FakeKernelSource(irs=irs)
    operator = KasminaOperator(model, source, kasmina, run_id=RUN_ID)
    if controller is None:
        artifacts = [
            kernel_artifact(kernel_id, ir, sum(p.numel() for p in source.instantiate(kernel_id).parameters()))
            for kernel_id, ir in irs.items()
        ]
        controller = TamiyoController(model, tamiyo, kernels=FakeKernels(artifacts))
    return Setup(data, model, operator, controller, source)


def transitions(events: RunEventLog) -> list[tuple[int, str, str]]:
    """(epoch, seed, "FROM->TO") for every recorded transition."""
    from esper.leyline.v1 import lifecycle_pb2

    def name(stage: int) -> str:
        return lifecycle_pb2.SeedStage.Name(stage).removeprefix("SEED_STAGE_")

    return [
        (
            e.seed_transition.epoch,
            e.seed_transition.seed_id,
            f"{name(e.seed_transition.from_stage)}->{name(e.seed_transition.to_stage)}",
        )
        for e in events.events()
        if e.WhichOneof("payload") == "seed_transition"
    ]


def notices(events: RunEventLog) -> list[str]:
    return [e.notice for e in events.events() if e.WhichOneof("payload") == "notice"]


def metrics_rows(trainer: TolariaTrainer) -> list[tuple[float, float, float, float, int]]:
    return [
        (
            r.metrics.train_loss,
            r.metrics.train_accuracy,
            r.metrics.val_loss,
            r.metrics.val_accuracy,
            r.metrics.parameter_count,
        )
        for r in trainer.history.epochs
    ]


def export_state(controller: Any) -> tamiyo_pb2.TamiyoControllerState:
    state: tamiyo_pb2.TamiyoControllerState = controller.export_controller_state(
        tamiyo_pb2.ExportControllerStateRequest(run_id=RUN_ID)
    ).state
    return state


def seed_stages(model: MorphableModel) -> dict[str, int]:
    return {seed.seed_id: int(seed.stage) for seed in model.seed_list()}


def host_weights(model: MorphableModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.host.state_dict().items()}
