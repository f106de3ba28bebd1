"""Scripted runs for Tamiyo tests: a fake kernel directory and a small seed simulator.

`SeedSimulator` plays Kasmina and Tolaria just enough for the controller: it applies
Tamiyo's commands with the real lifecycle table (an illegal command fails the test),
advances per-stage counters each epoch, signals readiness like Kasmina does, and
builds the StepRequest (packet + telemetry) Tolaria would send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import timestamp_pb2

from esper.kasmina.lifecycle import is_legal
from esper.leyline.v1 import (
    blueprint_pb2,
    control_pb2,
    kernel_pb2,
    lifecycle_pb2,
    tamiyo_pb2,
    telemetry_pb2,
    urza_pb2,
    urza_pb2_grpc,
)
from esper.leyline.v1.services import TamiyoServiceApi
from esper.mesh.server import ServiceRegistration
from esper.state import pack_system_state
from esper.tamiyo import TamiyoConfig, TamiyoController

S = lifecycle_pb2
RUN = "run-1"
SHAPE = (32,)


def descriptor(seed_id: str, layer: int, dims: Sequence[int] = SHAPE) -> telemetry_pb2.SeedDescriptor:
    message = telemetry_pb2.SeedDescriptor(
        seed_id=seed_id, layer_index=layer, input_kind=blueprint_pb2.INPUT_KIND_FEATURES
    )
    message.input_shape.dims.extend(dims)
    return message


LAYOUT = (descriptor("net.1", 0), descriptor("net.3", 1))


def kernel(
    kernel_id: str,
    *,
    blueprint_id: str = "",
    params: int = 100,
    tags: Sequence[str] = ("numerically_stable",),
    latency_ms: float = 0.5,
    dims: Sequence[int] = SHAPE,
    status: kernel_pb2.KernelStatus = kernel_pb2.KERNEL_STATUS_VALIDATED,
    output_dims: Sequence[int] = (),
) -> kernel_pb2.KernelArtifact:
    """A depth kernel at `dims`, or a width kernel from `dims` to `output_dims`."""
    artifact = kernel_pb2.KernelArtifact(
        kernel_id=kernel_id,
        blueprint_id=blueprint_id or f"bp-{kernel_id}",
        status=status,
        tags=list(tags),
        input_kind=blueprint_pb2.INPUT_KIND_FEATURES,
        parameter_count=params,
        hardware_target="cpu_test",
    )
    artifact.input_shape.dims.extend(dims)
    if output_dims:
        artifact.growth_kind = blueprint_pb2.GROWTH_KIND_WIDTH
        artifact.output_shape.dims.extend(output_dims)
    artifact.validation_report.kernel_id = kernel_id
    artifact.validation_report.passed = True
    artifact.validation_report.latency_ms_mean = latency_ms
    artifact.validation_report.tags.extend(tags)
    return artifact


class FakeKernels:
    """A KernelDirectory over a fixed list, filtering like Urza and paging by offset."""

    def __init__(self, kernels: Sequence[kernel_pb2.KernelArtifact] = ()) -> None:
        self.kernels = list(kernels)
        self.queries: list[urza_pb2.QueryKernelsRequest] = []
        self.error: Exception | None = None

    def query_kernels(self, request: urza_pb2.QueryKernelsRequest) -> urza_pb2.QueryKernelsResponse:
        self.queries.append(request)
        if self.error is not None:
            raise self.error
        query = request.query
        matches = [
            k
            for k in self.kernels
            if (not query.status or k.status == query.status)
            and (not query.input_kind or k.input_kind == query.input_kind)
            and (not query.input_shape.dims or list(k.input_shape.dims) == list(query.input_shape.dims))
            and set(query.tags_all) <= set(k.tags)
            and (not query.max_parameter_count or k.parameter_count <= query.max_parameter_count)
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 100
        page = matches[start : start + size]
        token = str(start + size) if start + size < len(matches) else ""
        return urza_pb2.QueryKernelsResponse(
            result=kernel_pb2.KernelQueryResult(kernels=page, next_page_token=token, total_size=len(matches))
        )


@dataclass
class SimSeed:
    descriptor: telemetry_pb2.SeedDescriptor
    stage: lifecycle_pb2.SeedStage = S.SEED_STAGE_DORMANT
    kernel_id: str = ""
    params: int = 0
    epochs_in_stage: int = 0
    alpha: float = 0.0
    dead: float = 0.1
    correlation: float = 0.2
    variance: float = 1.0
    isolation_violations: int = 0


@dataclass
class SeedSimulator:
    """Kasmina and Tolaria, as far as Tamiyo can tell. `eval_gain` is what EVALUATING measures."""

    layout: Sequence[telemetry_pb2.SeedDescriptor] = LAYOUT
    kernel_params: dict[str, int] = field(default_factory=dict)
    graft_epochs: int = 2
    stabilize_epochs: int = 1
    eval_gain: float = 0.02
    failing_loads: set[str] = field(default_factory=set)
    send_telemetry: bool = True
    final_epoch: int = 0
    run_id: str = RUN
    parameter_count: int = 10_000
    added_units: dict[str, int] = field(default_factory=dict)
    # UNSPECIFIED: the scripted numbers are accuracies; LOWER_IS_BETTER sends `1 - accuracy` as the metric.
    metric_direction: int = S.METRIC_DIRECTION_UNSPECIFIED
    seeds: dict[str, SimSeed] = field(init=False)

    def __post_init__(self) -> None:
        self.seeds = {d.seed_id: SimSeed(d) for d in self.layout}

    def train_epoch(self) -> None:
        """One epoch of training: stage counters and the alpha ramp move."""
        for seed in self.seeds.values():
            seed.epochs_in_stage += 1
            if seed.stage == S.SEED_STAGE_GRAFTING:
                seed.alpha = min(1.0, seed.epochs_in_stage / self.graft_epochs)

    def ready(self, seed: SimSeed) -> bool:
        n = seed.epochs_in_stage
        return {
            S.SEED_STAGE_TRAINING: n >= 1,
            S.SEED_STAGE_GRAFTING: seed.alpha >= 1.0,
            S.SEED_STAGE_STABILIZATION: n >= self.stabilize_epochs,
            S.SEED_STAGE_EVALUATING: n >= 1,
        }.get(seed.stage, False)

    def telemetry(self, epoch: int) -> list[telemetry_pb2.SeedTelemetry]:
        reports = []
        for seed in self.seeds.values():
            measured = seed.stage in (S.SEED_STAGE_EVALUATING, S.SEED_STAGE_FINE_TUNING) and (
                seed.stage == S.SEED_STAGE_FINE_TUNING or self.ready(seed)
            )
            reports.append(
                telemetry_pb2.SeedTelemetry(
                    run_id=self.run_id,
                    seed_id=seed.descriptor.seed_id,
                    epoch=epoch,
                    stage=seed.stage,
                    chunk_variance=seed.variance,
                    dead_node_ratio=seed.dead,
                    avg_correlation=seed.correlation,
                    alpha=seed.alpha,
                    is_ready_for_transition=self.ready(seed),
                    isolation_violations=seed.isolation_violations,
                    eval_gain=self.eval_gain if measured else 0.0,
                    parameter_count=seed.params,
                    kernel_id=seed.kernel_id,
                    added_units=self.added_units.get(seed.kernel_id, 0),
                )
            )
        return reports

    def request(
        self, epoch: int, accuracy: float, *, loss: float = 0.5, parameter_count: int | None = None
    ) -> tamiyo_pb2.StepRequest:
        telemetry = self.telemetry(epoch)
        packet = pack_system_state(
            run_id=self.run_id,
            epoch=epoch,
            global_step=10 * (epoch + 1),
            training_loss=loss,
            validation_loss=loss,
            validation_accuracy=accuracy if self.metric_direction == S.METRIC_DIRECTION_UNSPECIFIED else 0.0,
            epoch_ms=7,
            seeds=telemetry,
            validation_metric=self.metric(accuracy),
            metric_direction=self.metric_direction,  # type: ignore[arg-type]
        )
        packet.packet_time.CopyFrom(timestamp_pb2.Timestamp(seconds=1_700_000_000 + epoch))
        return tamiyo_pb2.StepRequest(
            packet=packet,
            seed_layout=self.layout,
            telemetry=telemetry if self.send_telemetry else [],
            parameter_count=self.parameter_count if parameter_count is None else parameter_count,
            final_epoch=self.final_epoch,
        )

    def metric(self, accuracy: float) -> float:
        """The packet's validation_metric for a scripted accuracy."""
        if self.metric_direction == S.METRIC_DIRECTION_LOWER_IS_BETTER:
            return 1.0 - accuracy
        if self.metric_direction == S.METRIC_DIRECTION_HIGHER_IS_BETTER:
            return accuracy
        return 0.0

    def apply(self, commands: Sequence[control_pb2.AdaptationCommand]) -> None:
        """Apply a step's commands, then let CULLED/CANCELLED seeds return to DORMANT next boundary."""
        returning = [s for s in self.seeds.values() if s.stage in (S.SEED_STAGE_CULLED, S.SEED_STAGE_CANCELLED)]
        for seed in returning:
            self._move(seed, S.SEED_STAGE_DORMANT)
            seed.kernel_id, seed.params = "", 0
        for command in commands:
            seed = self.seeds[command.seed_id]
            kind = command.command_type
            if kind == S.COMMAND_TYPE_REQUEST_GERMINATION:
                self._move(seed, S.SEED_STAGE_GERMINATED)
                seed.kernel_id = command.kernel_id
            elif kind == S.COMMAND_TYPE_ADVANCE and command.target_stage == S.SEED_STAGE_LOADING:
                self._move(seed, S.SEED_STAGE_LOADING)
                self._load(seed)
            elif kind == S.COMMAND_TYPE_ADVANCE:
                self._move(seed, command.target_stage)
            else:
                target = {
                    S.COMMAND_TYPE_FOSSILIZE: S.SEED_STAGE_FOSSILIZED,
                    S.COMMAND_TYPE_CULL: S.SEED_STAGE_CULLED,
                    S.COMMAND_TYPE_CANCEL_GERMINATION: S.SEED_STAGE_CANCELLED,
                }[kind]
                self._move(seed, target)

    def roll_back(self, seed_id: str) -> None:
        self._move(self.seeds[seed_id], S.SEED_STAGE_ROLLED_BACK)

    def _load(self, seed: SimSeed) -> None:
        if seed.kernel_id in self.failing_loads:
            self._move(seed, S.SEED_STAGE_CULLED)
            return
        seed.params = self.kernel_params.get(seed.kernel_id, 100)
        self._move(seed, S.SEED_STAGE_TRAINING if seed.params else S.SEED_STAGE_GRAFTING)

    def _move(self, seed: SimSeed, target: lifecycle_pb2.SeedStage) -> None:
        assert is_legal(seed.stage, target), (
            f"illegal transition {S.SeedStage.Name(seed.stage)} -> {S.SeedStage.Name(target)} "
            f"for {seed.descriptor.seed_id}"
        )
        seed.stage = target
        seed.epochs_in_stage = 0
        if target in (S.SEED_STAGE_GRAFTING, S.SEED_STAGE_DORMANT):
            seed.alpha = 0.0


Accuracy = Callable[[int], float]


def run_epochs(
    controller: TamiyoServiceApi,
    sim: SeedSimulator,
    accuracies: Sequence[float],
    *,
    start: int = 0,
    before_step: Callable[[int, SeedSimulator], None] | None = None,
) -> list[tamiyo_pb2.StepResponse]:
    """Train, step and apply for each epoch from `start`, with the given validation accuracies."""
    responses = []
    for offset, accuracy in enumerate(accuracies):
        epoch = start + offset
        sim.train_epoch()
        if before_step is not None:
            before_step(epoch, sim)
        response = controller.step(sim.request(epoch, accuracy))
        sim.apply(response.commands)
        responses.append(response)
    return responses


def commands_by_epoch(responses: Sequence[tamiyo_pb2.StepResponse]) -> list[list[str]]:
    """Each step's commands as short labels, e.g. "net.3:ADVANCE:GRAFTING"."""
    labels = []
    for response in responses:
        step = []
        for command in response.commands:
            label = f"{command.seed_id}:{S.CommandType.Name(command.command_type).removeprefix('COMMAND_TYPE_')}"
            if command.target_stage:
                label += ":" + S.SeedStage.Name(command.target_stage).removeprefix("SEED_STAGE_")
            step.append(label)
        labels.append(step)
    return labels


def make_controller(kernels: FakeKernels | None = None, **config: object) -> TamiyoController:
    return TamiyoController(None, TamiyoConfig(**config), kernels=kernels)  # type: ignore[arg-type]


# A plateau from epoch 3 on (patience 2 after the best 0.60 at epoch 1).
PLATEAU = [0.50, 0.60, 0.60, 0.60]


class _KernelListUrza(urza_pb2_grpc.UrzaServiceServicer):
    """An Urza that only answers QueryKernels (the other rpcs are UNIMPLEMENTED)."""

    def __init__(self, kernels: FakeKernels) -> None:
        self._kernels = kernels

    async def QueryKernels(
        self, request: urza_pb2.QueryKernelsRequest, context: grpc.aio.ServicerContext
    ) -> urza_pb2.QueryKernelsResponse:
        return await asyncio.to_thread(self._kernels.query_kernels, request)


def kernel_list_urza(kernels: FakeKernels) -> ServiceRegistration:
    """A small Urza server for a remote Tamiyo's kernel directory: QueryKernels from `kernels`."""
    fake = _KernelListUrza(kernels)
    return ServiceRegistration(
        service_name=urza_pb2.DESCRIPTOR.services_by_name["UrzaService"].full_name,
        add_to_server=lambda server: urza_pb2_grpc.add_UrzaServiceServicer_to_server(fake, server),
    )
