"""Small hosts, a fake kernel source and command builders for Kasmina's tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from esper.ir import build_module
from esper.karn.catalog import TemplateCatalog
from esper.kasmina.config import KasminaConfig
from esper.kasmina.morphable import MorphableModel
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.records import IsolationViolation
from esper.kasmina.source import KernelDescription
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import blueprint_pb2, control_pb2, kasmina_pb2, kernel_pb2, lifecycle_pb2

RUN_ID = "run-test"
CATALOG = TemplateCatalog.default()


def mlp_host(seed: int = 0, features: int = 8, width: int = 16, classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(features, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, classes),
    )


def cnn_host(seed: int = 0, channels: int = 4, classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 4 * 4, classes),
    )


def template_ir(template_id: str, shape: list[int], init_seed: int = 0) -> blueprint_pb2.BlueprintIR:
    return CATALOG.instantiate(template_id, shape, init_seed=init_seed).ir


class FixedFunction(nn.Module):
    """A kernel without parameters: 0.1 * tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return 0.1 * torch.tanh(x)


@dataclass
class FakeKernelSource:
    """Kernels by id: an IR (built with esper.ir.build_module) or a module factory; or an error."""

    irs: dict[str, blueprint_pb2.BlueprintIR] = field(default_factory=dict)
    factories: dict[str, Callable[[], nn.Module]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    instantiated: list[str] = field(default_factory=list)

    def describe(self, kernel_id: str) -> KernelDescription:
        if kernel_id in self.errors:
            raise self.errors[kernel_id]
        artifact = kernel_pb2.KernelArtifact(
            kernel_id=kernel_id, blueprint_id=f"bp-{kernel_id}", template_id=f"tpl-{kernel_id}"
        )
        ir = self.irs.get(kernel_id)
        if ir is not None:
            artifact.input_kind = ir.input_kind
            artifact.growth_kind = ir.growth_kind
            artifact.input_shape.CopyFrom(ir.input_shape)
            artifact.output_shape.CopyFrom(ir.output_shape)
        return KernelDescription(artifact=artifact, ir=self.irs.get(kernel_id), template_id=f"tpl-{kernel_id}")

    def instantiate(self, kernel_id: str) -> nn.Module:
        if kernel_id in self.errors:
            raise self.errors[kernel_id]
        self.instantiated.append(kernel_id)
        if kernel_id in self.factories:
            return self.factories[kernel_id]()
        return build_module(self.irs[kernel_id])


@dataclass
class RecordingEvents:
    violations: list[IsolationViolation] = field(default_factory=list)

    def isolation_violation(self, violation: IsolationViolation) -> None:
        self.violations.append(violation)


def features_source(width: int = 16) -> FakeKernelSource:
    """k-mlp (trainable, from Karn's mlp_relu_e1 at [width]), k-fixed (no parameters)."""
    return FakeKernelSource(
        irs={"k-mlp": template_ir("mlp_relu_e1", [width], init_seed=3)},
        factories={"k-fixed": FixedFunction},
    )


def mlp_setup(
    config: KasminaConfig | None = None, source: FakeKernelSource | None = None
) -> tuple[MorphableModel, KasminaOperator, FakeKernelSource, RecordingEvents]:
    config = config or KasminaConfig(target_module_types=("ReLU",))
    model = wrap(mlp_host(), config, example_input=torch.randn(4, 8))
    source = source or features_source()
    events = RecordingEvents()
    operator = KasminaOperator(model, source, config, run_id=RUN_ID, on_isolation_violation=events.isolation_violation)
    return model, operator, source, events


def command(
    command_type: int,
    seed_id: str = "1",
    *,
    command_id: str,
    kernel_id: str = "",
    target_stage: int = 0,
    grafting_strategy: int = 0,
    run_id: str = RUN_ID,
) -> kasmina_pb2.ApplyCommandRequest:
    return kasmina_pb2.ApplyCommandRequest(
        command=control_pb2.AdaptationCommand(
            command_id=command_id,
            run_id=run_id,
            seed_id=seed_id,
            command_type=command_type,  # type: ignore[arg-type]
            kernel_id=kernel_id,
            target_stage=target_stage,  # type: ignore[arg-type]
            grafting_strategy=grafting_strategy,  # type: ignore[arg-type]
        )
    )


def germinate(operator: KasminaOperator, seed_id: str, kernel_id: str, tag: str = "g") -> None:
    operator.apply_command(
        command(
            lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION,
            seed_id,
            command_id=f"{tag}-germ",
            kernel_id=kernel_id,
        )
    )


def advance(operator: KasminaOperator, seed_id: str, stage: int, tag: str) -> kasmina_pb2.ApplyCommandResponse:
    return operator.apply_command(
        command(lifecycle_pb2.COMMAND_TYPE_ADVANCE, seed_id, command_id=tag, target_stage=stage)
    )


def train_steps(model: MorphableModel, steps: int, *, seed: int = 1, lr: float = 0.05) -> None:
    """A few SGD steps on random data (host and trainable seed parameters), calling model.step()."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 8, generator=generator)
        y = torch.randint(0, 3, (16,), generator=generator)
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                if param.grad is not None and param.requires_grad:
                    param -= lr * param.grad
        model.step(loss.detach())


_ORDER = [
    lifecycle_pb2.SEED_STAGE_DORMANT,
    lifecycle_pb2.SEED_STAGE_GERMINATED,
    lifecycle_pb2.SEED_STAGE_LOADING,
    lifecycle_pb2.SEED_STAGE_TRAINING,
    lifecycle_pb2.SEED_STAGE_GRAFTING,
    lifecycle_pb2.SEED_STAGE_STABILIZATION,
    lifecycle_pb2.SEED_STAGE_EVALUATING,
    lifecycle_pb2.SEED_STAGE_FINE_TUNING,
    lifecycle_pb2.SEED_STAGE_FOSSILIZED,
]
_COMMAND_IDS = itertools.count()


def bring_to(operator: KasminaOperator, seed_id: str, stage: int, kernel_id: str = "k-mlp") -> None:
    """Command the seed along the main path (germinate, load, graft, ...) from where it is to `stage`."""
    seed = operator.model.seed(seed_id)
    if seed.stage == lifecycle_pb2.SEED_STAGE_DORMANT and stage != seed.stage:
        germinate(operator, seed_id, kernel_id, tag=f"{seed_id}-{next(_COMMAND_IDS)}")
    for target in _ORDER[2:]:
        if seed.stage == stage:
            return
        if _ORDER.index(seed.stage) >= _ORDER.index(target) or target == lifecycle_pb2.SEED_STAGE_TRAINING:
            continue  # already past it (TRAINING is reached by loading a trainable kernel)
        if target == lifecycle_pb2.SEED_STAGE_FINE_TUNING and stage != target and not seed.has_trainable_kernel:
            continue
        advance(operator, seed_id, target, f"{seed_id}-{next(_COMMAND_IDS)}")
    assert seed.stage == stage, seed.stage
