"""Seeds by stage: dormant identity, gradient isolation while TRAINING, grafting, freezing, culling."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import Tensor, nn

from esper.errors import FailedPrecondition
from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.isolation import straight_through
from esper.kasmina.morphable import MorphableModel
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import lifecycle_pb2
from tests.support.kasmina import (
    RUN_ID,
    FakeKernelSource,
    FixedFunction,
    bring_to,
    cnn_host,
    command,
    mlp_host,
    mlp_setup,
    template_ir,
)

RELU = KasminaConfig(target_module_types=("ReLU",), isolation_check_every=1, gradient_sample_every=1)


def _host_grads(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(x)
    nn.functional.cross_entropy(out, y).backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def _sgd(model: nn.Module, params: list[nn.Parameter], x: Tensor, y: Tensor, lr: float = 0.1) -> None:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for param in params:
            if param.grad is not None:
                param -= lr * param.grad


def test_all_dormant_model_is_the_host_and_hooks_nothing() -> None:
    host = mlp_host()
    reference = copy.deepcopy(host)
    model = wrap(host, RELU, example_input=torch.randn(2, 8))
    x = torch.randn(32, 8)
    assert torch.equal(model(x), reference(x))
    assert all(not module._forward_hooks for module in host.modules())
    assert model.version == 0
    assert model.parameter_groups().seeds == {}
    assert model.state_dict().keys() == {f"host.{key}" for key in reference.state_dict()}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_training_seed_leaves_host_output_and_gradients_bit_identical(kind: str) -> None:
    if kind == "mlp":
        host, x, site, ir = mlp_host(), torch.randn(16, 8), "1", template_ir("mlp_relu_e1", [16], init_seed=3)
    else:
        host, x, site, ir = cnn_host(), torch.randn(16, 1, 8, 8), "1", template_ir("conv3x3_relu", [4, 8, 8])
    y = torch.randint(0, 3, (16,))
    reference = copy.deepcopy(host)
    model = wrap(host, RELU, example_input=x[:2])
    operator = KasminaOperator(model, FakeKernelSource(irs={"k": ir}), run_id=RUN_ID)
    bring_to(operator, site, lc.TRAINING, kernel_id="k")
    seed = model.seed(site)
    assert seed.hooked

    for _ in range(3):  # several steps: isolation must hold as the kernel learns
        out, grads = _host_grads(model.host, x, y)
        ref_out, ref_grads = _host_grads(reference, x, y)
        assert torch.equal(out, ref_out)
        assert len(grads) == len(ref_grads)
        assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads, strict=True))
        kernel_grads = [p.grad for p in seed.trainable_parameters()]
        assert kernel_grads and all(g is not None for g in kernel_grads)
        assert any(g.abs().sum() > 0 for g in kernel_grads if g is not None)
        before = [p.detach().clone() for p in seed.trainable_parameters()]
        _sgd(model, list(model.parameters()), x, y)
        _sgd(reference, list(reference.parameters()), x, y)
        model.step()
        assert any(not torch.equal(a, b) for a, b in zip(before, seed.trainable_parameters(), strict=True))
    assert seed.isolation_violations == 0
    assert seed.stage == lc.TRAINING


def test_training_seed_gets_the_grafted_gradient_first_order() -> None:
    model, operator, _, _ = mlp_setup(dataclasses.replace(RELU, training_reach=0.0))
    bring_to(operator, "3", lc.TRAINING)
    seed = model.seed("3")
    assert seed.kernel is not None
    x = torch.randn(8, 8)
    captured: dict[str, Tensor] = {}

    def capture(module: nn.Module, args: object, out: Tensor) -> None:
        captured["h"] = out.detach()

    handle = model.host[3].register_forward_hook(capture)
    model(x).sum().backward()
    handle.remove()
    straight = [p.grad.clone() for p in seed.trainable_parameters() if p.grad is not None]
    # The same kernel grafted at alpha=1, with the host's downstream gradient held fixed.
    kernel = copy.deepcopy(seed.kernel)
    h = captured["h"]
    downstream = torch.ones(8, 3) @ model.host[4].weight  # d(sum(out)) / d(activation)
    (downstream * kernel(h)).sum().backward()
    grafted = [p.grad for p in kernel.parameters()]
    assert len(straight) == 4
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(straight, grafted, strict=True))


def test_training_objective_has_a_bounded_minimum_at_reach_times_the_activation() -> None:
    """The proximal term: a kernel free to output anything settles at -reach * |h| * g / |g|."""
    h = torch.randn(16, 8)
    g = torch.randn(16, 8)
    s = torch.zeros(16, 8, requires_grad=True)
    optimizer = torch.optim.SGD([s], lr=0.5 * 0.25 * float(h.norm() / g.norm()))  # half the inverse curvature
    for _ in range(200):
        optimizer.zero_grad()
        straight_through(h, s, 1.0, 0.25).backward(g)
        optimizer.step()
    expected = -0.25 * h.norm() * g / g.norm()
    assert torch.allclose(s.detach(), expected, atol=1e-4)
    # The first-order objective alone keeps growing along -g.
    s0 = torch.zeros(16, 8, requires_grad=True)
    straight_through(h, s0, 1.0).backward(g)
    assert torch.equal(s0.grad, g)


def test_grafting_blends_with_the_ramped_alpha() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), ramp_steps=4)
    model, operator, _, _ = mlp_setup(config)
    bring_to(operator, "1", lc.GRAFTING)
    seed = model.seed("1")
    assert seed.alpha == 0.0 and not seed.is_ready_for_transition
    x = torch.randn(4, 16)
    for step in range(1, 6):
        model.step()
        expected = min(step, 4) / 4
        assert seed.alpha == expected
        assert seed.kernel is not None
        assert torch.equal(seed(x), x + expected * seed.kernel(x))
    assert seed.is_ready_for_transition


def test_stabilization_freezes_the_kernel_and_changes_the_trainable_set() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), stabilization_steps=2)
    model, operator, _, _ = mlp_setup(config)
    bring_to(operator, "1", lc.GRAFTING)
    trainable = model.parameter_groups().seeds["1"]
    version = model.version
    bring_to(operator, "1", lc.STABILIZATION)
    seed = model.seed("1")
    assert model.version != version
    assert "1" not in model.parameter_groups().seeds
    assert model.seed_parameter_groups()["1"] == trainable  # still listed for optimizer bookkeeping
    assert all(not p.requires_grad for p in trainable)
    model(torch.randn(4, 8)).sum().backward()
    assert all(p.grad is None for p in trainable)
    assert model.host[0].weight.grad is not None
    assert seed.alpha == 1.0
    model.step()
    assert not seed.is_ready_for_transition
    model.step()
    assert seed.is_ready_for_transition


def test_evaluating_forced_alpha_zero_is_the_host_and_fine_tuning_trains_again() -> None:
    host = mlp_host()
    reference = copy.deepcopy(host)
    model = wrap(host, RELU, example_input=torch.randn(2, 8))
    from tests.support.kasmina import features_source

    operator = KasminaOperator(model, features_source(), run_id=RUN_ID)
    bring_to(operator, "1", lc.EVALUATING)
    x = torch.randn(16, 8)
    with model.forced_alpha(0.0):
        assert torch.equal(model(x), reference(x))
    assert not torch.equal(model(x), reference(x))
    seed = model.seed("1")
    assert not seed.is_ready_for_transition
    operator.record_eval_gain("1", 0.02)
    assert seed.is_ready_for_transition
    assert model.seed_parameters("1") == []
    bring_to(operator, "1", lc.FINE_TUNING)
    assert model.seed_parameters("1") and all(p.requires_grad for p in model.seed_parameters("1"))
    bring_to(operator, "1", lc.FOSSILIZED)
    assert model.seed_parameters("1") == []
    assert all(not p.requires_grad for p in seed.kernel_parameters())


def test_fixed_function_kernel_skips_training_and_cannot_fine_tune() -> None:
    model, operator, _, _ = mlp_setup(RELU)
    bring_to(operator, "1", lc.GRAFTING, kernel_id="k-fixed")
    assert model.seed("1").stage == lc.GRAFTING
    bring_to(operator, "1", lc.EVALUATING, kernel_id="k-fixed")
    with pytest.raises(FailedPrecondition):
        operator.apply_command(
            command(lifecycle_pb2.COMMAND_TYPE_ADVANCE, "1", command_id="ft", target_stage=lc.FINE_TUNING)
        )
    operator.apply_command(command(lifecycle_pb2.COMMAND_TYPE_FOSSILIZE, "1", command_id="fossil"))
    assert model.seed("1").stage == lc.FOSSILIZED


def test_cull_drops_the_kernel_from_the_trainable_set_and_embargoes_the_slot() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), embargo_epochs=2)
    model, operator, _, _ = mlp_setup(config)
    bring_to(operator, "1", lc.TRAINING)
    params = model.seed_parameters("1")
    version = model.version
    assert params
    operator.apply_command(command(lifecycle_pb2.COMMAND_TYPE_CULL, "1", command_id="cull"))
    seed = model.seed("1")
    assert seed.stage == lc.CULLED and seed.kernel is None and not seed.hooked
    assert model.version != version
    assert "1" not in model.seed_parameter_groups() and "1" not in model.parameter_groups().seeds
    all_ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in all_ids for p in params)
    assert seed.embargo_until_epoch == 2
    operator.on_epoch_end(0)
    assert seed.stage == lc.DORMANT
    germination = command(lifecycle_pb2.COMMAND_TYPE_REQUEST_GERMINATION, "1", command_id="again", kernel_id="k-mlp")
    with pytest.raises(FailedPrecondition, match="embargoed until epoch 2"):
        operator.apply_command(germination)
    operator.on_epoch_end(1)
    with pytest.raises(FailedPrecondition):
        operator.apply_command(germination)
    operator.on_epoch_end(2)
    assert operator.apply_command(germination).stage == lc.GERMINATED


class ModeRefusingKernel(nn.Module):
    """Like an exported program's module: refuses train()/eval()."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((16,), 0.01))

    def train(self, mode: bool = True) -> ModeRefusingKernel:
        raise NotImplementedError("Calling train() is not supported yet.")

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


def test_model_modes_do_not_reach_mode_free_kernels() -> None:
    source = FakeKernelSource(factories={"k": ModeRefusingKernel})
    model, operator, _, _ = mlp_setup(RELU, source)
    bring_to(operator, "1", lc.GRAFTING, kernel_id="k")
    model.eval()
    assert not model.training and not model.host.training
    model.train()
    assert model.training and model.seed("1").training


def test_kernel_stage_without_kernel_is_refused_and_changes_nothing() -> None:
    model, _, _, _ = mlp_setup(RELU)
    seed = model.seed("1")
    seed.enter(lc.GERMINATED, epoch=0)
    seed.enter(lc.LOADING, epoch=0)
    with pytest.raises(FailedPrecondition):
        seed.enter(lc.TRAINING, epoch=0)
    assert seed.stage == lc.LOADING and not seed.hooked


def test_fixed_function_module_has_no_parameters() -> None:
    assert list(FixedFunction().parameters()) == []


def test_unknown_seed_is_not_found() -> None:
    model, _, _, _ = mlp_setup(RELU)
    from esper.errors import NotFound

    with pytest.raises(NotFound) as caught:
        model.seed("nope")
    assert caught.value.reason == "SEED_NOT_FOUND"


def test_morphable_model_refuses_a_layout_the_host_does_not_have() -> None:
    from esper.errors import InvalidArgument
    from esper.kasmina.wrapping import descriptor

    with pytest.raises(InvalidArgument):
        MorphableModel(mlp_host(), [descriptor("9", 0, [16])], RELU)
