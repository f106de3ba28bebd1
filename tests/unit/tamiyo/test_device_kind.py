"""Tamiyo germinates with kernels built for the run's kind of device."""

from __future__ import annotations

import pytest

from esper.errors import InvalidArgument
from esper.leyline.v1 import lifecycle_pb2
from tests.support.tamiyo import PLATEAU, FakeKernels, SeedSimulator, kernel, make_controller


def _germinated_kernel(device_kind: str) -> str:
    cpu = kernel("k-cpu", params=100, latency_ms=0.3)
    cuda = kernel("k-cuda", params=100, latency_ms=0.1)
    cuda.hardware_target = "cuda_sm80"
    controller = make_controller(FakeKernels([cpu, cuda]))
    sim = SeedSimulator()
    sim.seeds["net.3"].dead = 0.4
    for epoch, accuracy in enumerate(PLATEAU):
        sim.train_epoch()
        request = sim.request(epoch, accuracy)
        request.device_kind = device_kind
        response = controller.step(request)
        sim.apply(response.commands)
        for command in response.commands:
            if command.command_type == lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION:
                return command.kernel_id
    raise AssertionError("no germination")


def test_a_cpu_run_gets_a_cpu_kernel_and_a_cuda_run_a_cuda_kernel() -> None:
    assert _germinated_kernel("cpu") == "k-cpu"
    assert _germinated_kernel("cuda") == "k-cuda"
    # A caller that does not say takes the best of all (here the faster one).
    assert _germinated_kernel("") == "k-cuda"


def test_an_unknown_device_kind_is_refused_naming_the_field() -> None:
    request = SeedSimulator().request(0, 0.5)
    request.device_kind = "tpu"
    with pytest.raises(InvalidArgument) as raised:
        make_controller().step(request)
    assert [v.field for v in raised.value.violations] == ["device_kind"]
