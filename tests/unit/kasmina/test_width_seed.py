"""Width seeds: placed where widening is exact, an identity at alpha 0, equal to a widened layer at
alpha 1, isolated while TRAINING, and free while dormant."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.morphable import MorphableModel
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.seed import KasminaSeed
from esper.kasmina.widening import resize_to
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import blueprint_pb2
from tests.support.kasmina import (
    CATALOG,
    RUN_ID,
    FakeKernelSource,
    RecordingEvents,
    bring_to,
    cnn_host,
    mlp_host,
    train_steps,
)

WIDTH = KasminaConfig(target_module_types=("ReLU",), width_seeds=True, isolation_check_every=1)


def _width_ir(template_id: str, input_shape: list[int], output_shape: list[int]) -> blueprint_pb2.BlueprintIR:
    return CATALOG.instantiate(template_id, input_shape, output_shape=output_shape, init_seed=5).ir


def _mlp(config: KasminaConfig = WIDTH) -> tuple[MorphableModel, KasminaOperator, RecordingEvents]:
    model = wrap(mlp_host(), config, example_input=torch.randn(4, 8))
    source = FakeKernelSource(irs={"k-w4": _width_ir("widen_k4", [8], [16]), "k-w2": _width_ir("widen_k2", [16], [3])})
    events = RecordingEvents()
    return (
        model,
        KasminaOperator(model, source, config, run_id=RUN_ID, on_isolation_violation=events.isolation_violation),
        events,
    )


def test_wrap_places_width_seeds_where_the_pattern_is_exact() -> None:
    model, _, _ = _mlp()
    layout = [(d.seed_id, d.layer_index, d.site, d.output_site, d.layer_units) for d in model.seed_layout()]
    assert layout == [
        ("w:0", 0, "0", "2", 16),
        ("1", 0, "1", "", 16),
        ("w:2", 1, "2", "4", 16),
        ("3", 1, "3", "", 16),
    ]
    width = model.seed("w:0").descriptor
    assert width.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH
    assert (list(width.input_shape.dims), list(width.output_shape.dims)) == ([8], [16])
    # The CNN's second conv feeds the classifier through Flatten without a pool: no template builds that.
    cnn = wrap(cnn_host(), WIDTH, example_input=torch.randn(2, 1, 8, 8))
    assert [d.seed_id for d in cnn.seed_layout() if d.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH] == ["w:0"]
    assert list(cnn.seed("w:0").descriptor.output_shape.dims) == [4, 4, 4]


class HiddenScale(nn.Module):
    """Linear, ReLU, Linear by module types, with a `* 2` in forward that module hooks cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)) * 2)


def test_an_operation_hidden_in_forward_gets_no_width_seed() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), width_seeds=True)
    model = wrap(HiddenScale(), config, example_input=torch.randn(3, 4))
    assert model.seed_ids() == ["act"]


def test_a_dormant_width_seed_costs_nothing() -> None:
    model, _, _ = _mlp()
    seed = model.seed("w:0")
    assert not seed.hooked
    assert all(not module._forward_hooks for module in model.host.modules())
    x = torch.randn(5, 8)
    assert torch.equal(model(x), model.host(x))


def _widened_mlp(host: nn.Sequential, kernel: nn.Module) -> nn.Sequential:
    """The host with its first layer explicitly widened by the kernel's units."""
    w_in, b_in, w_out = (p.detach() for p in kernel.parameters())
    k = w_in.shape[0]
    wide = nn.Sequential(nn.Linear(8, 16 + k), nn.ReLU(), nn.Linear(16 + k, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        wide[0].weight.copy_(torch.cat([host[0].weight, w_in]))
        wide[0].bias.copy_(torch.cat([host[0].bias, b_in]))
        wide[2].weight.copy_(torch.cat([host[2].weight, w_out], dim=1))
        wide[2].bias.copy_(host[2].bias)
        wide[4].load_state_dict(host[4].state_dict())
    return wide


@pytest.mark.parametrize("merge", [True, False])
def test_a_fossilized_width_seed_equals_the_explicitly_widened_layer(merge: bool) -> None:
    config = KasminaConfig(target_module_types=("ReLU",), width_seeds=True, merge_width_fossils=merge)
    model, operator, _ = _mlp(config)
    bring_to(operator, "w:0", lc.FINE_TUNING, kernel_id="k-w4")
    seed = model.seed("w:0")
    assert seed.kernel is not None
    wide = _widened_mlp(_plain_copy(model), seed.kernel)
    x = torch.randn(32, 8)
    with torch.no_grad():
        before = model(x)
    bring_to(operator, "w:0", lc.FOSSILIZED, kernel_id="k-w4")
    with torch.no_grad():
        torch.testing.assert_close(model(x), wide(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)
    if merge:
        # The units are the host's own now: layer 0 has 20 outputs, layer 2 reads 20 inputs.
        assert seed.merged and seed.kernel is None and not seed.hooked
        assert (model.host[0].out_features, model.host[2].in_features) == (20, 20)
        assert torch.equal(model.host[0].weight, wide[0].weight) and torch.equal(model.host[2].weight, wide[2].weight)
    else:
        assert seed.kernel is not None and model.host[0].out_features == 16


def test_a_width_seed_is_the_identity_at_alpha_zero() -> None:
    model, operator, _ = _mlp()
    bring_to(operator, "w:2", lc.GRAFTING, kernel_id="k-w2")
    seed = model.seed("w:2")
    assert seed.hooked and seed.alpha == 0.0
    x = torch.randn(6, 8)
    plain = _plain_copy(model)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
        with model.forced_alpha(0.0, ["w:2"]):
            assert torch.equal(model(x), plain(x))
        with model.forced_alpha(1.0, ["w:2"]):
            assert not torch.equal(model(x), plain(x))


def _plain_copy(model: MorphableModel) -> nn.Sequential:
    """The host's modules and weights without any seed hook (its own layer sizes)."""
    plain = cnn_host() if isinstance(model.host[0], nn.Conv2d) else mlp_host()
    state = model.host.state_dict()
    resize_to(plain, state)
    plain.load_state_dict(state)
    return plain


@pytest.mark.parametrize(("seed_id", "kernel_id"), [("w:0", "k-w4"), ("w:2", "k-w2")])
def test_training_width_seed_leaves_the_host_bit_identical_and_learns(seed_id: str, kernel_id: str) -> None:
    model, operator, events = _mlp()
    bring_to(operator, seed_id, lc.TRAINING, kernel_id=kernel_id)
    seed = model.seed(seed_id)
    reference = _plain_copy(model)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    model.arm_epoch_checks()
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out, y).backward()
    reference.zero_grad(set_to_none=True)
    expected = reference(x)
    F.cross_entropy(expected, y).backward()
    assert torch.equal(out, expected)
    for mine, theirs in zip(model.host.parameters(), reference.parameters(), strict=True):
        assert mine.grad is not None and theirs.grad is not None
        assert torch.equal(mine.grad, theirs.grad)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in seed.trainable_parameters())
    assert seed.isolation_violations == 0 and not events.violations
    assert seed.stage == lc.TRAINING


def test_a_width_kernel_reading_its_input_without_detaching_is_caught_and_culled() -> None:
    model, operator, events = _mlp()
    # The second layer's input carries gradients to the first: a leak there would change them.
    bring_to(operator, "w:2", lc.TRAINING, kernel_id="k-w2")
    seed = model.seed("w:2")

    def leaky(self: KasminaSeed, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        assert self.kernel is not None
        s = self.kernel(x)  # not detached: gradients would flow into the layers before L
        return h + (s - s.detach()), s

    seed._training_output = types.MethodType(leaky, seed)  # type: ignore[method-assign]
    reference = _plain_copy(model)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    model.arm_epoch_checks()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    reference.zero_grad(set_to_none=True)
    F.cross_entropy(reference(x), y).backward()
    # The probe handed the host zeros instead of the leak: its gradients are still exact.
    for mine, theirs in zip(model.host.parameters(), reference.parameters(), strict=True):
        assert torch.equal(mine.grad, theirs.grad)  # type: ignore[arg-type]
    assert [v.kind for v in events.violations] == ["gradient"]
    assert "kernel's input" in events.violations[0].detail
    assert seed.stage == lc.CULLED


def test_width_seed_telemetry_observes_the_layer_it_widens() -> None:
    model, _, _ = _mlp()
    with torch.no_grad():
        model.host[0].bias.fill_(-100.0)  # every unit of the first layer dead
    with model.collecting_telemetry(), torch.no_grad():
        model(torch.randn(64, 8))
    assert model.seed("w:0").activation_summary.dead_node_ratio == 1.0
    assert model.seed("w:2").activation_summary.rows == 64
    assert not any(seed.hooked for seed in model.seed_list())


@pytest.mark.parametrize("stage", [lc.GRAFTING, lc.FINE_TUNING])
def test_grafted_width_seed_trains_with_the_host(stage: int) -> None:
    model, operator, _ = _mlp()
    bring_to(operator, "w:0", stage, kernel_id="k-w4")
    seed = model.seed("w:0")
    before = [p.detach().clone() for p in seed.trainable_parameters()]
    train_steps(model, 3)
    after = seed.trainable_parameters()
    assert before and any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("merge", [True, False])
def test_conv_width_seed_equals_a_widened_conv(merge: bool) -> None:
    config = KasminaConfig(target_module_types=("ReLU",), width_seeds=True, merge_width_fossils=merge)
    model = wrap(cnn_host(), config, example_input=torch.randn(2, 1, 8, 8))
    source = FakeKernelSource(irs={"k-c": _width_ir("widen_conv3_k2", [1, 8, 8], [4, 4, 4])})
    operator = KasminaOperator(model, source, config, run_id=RUN_ID)
    bring_to(operator, "w:0", lc.FINE_TUNING, kernel_id="k-c")
    kernel = model.seed("w:0").kernel
    assert kernel is not None
    w_in, b_in, w_out = (p.detach().clone() for p in kernel.parameters())
    host = _plain_copy(model)
    bring_to(operator, "w:0", lc.FOSSILIZED, kernel_id="k-c")
    wide = _plain_copy(model) if not merge else cnn_host()
    wide[0] = nn.Conv2d(1, 6, 3, padding=1)
    wide[3] = nn.Conv2d(6, 4, 3, padding=1)
    with torch.no_grad():
        wide[6].load_state_dict(host[6].state_dict())
        wide[0].weight.copy_(torch.cat([host[0].weight, w_in]))
        wide[0].bias.copy_(torch.cat([host[0].bias, b_in]))
        wide[3].weight.copy_(torch.cat([host[3].weight, w_out], dim=1))
        wide[3].bias.copy_(host[3].bias)
        x = torch.randn(4, 1, 8, 8)
        torch.testing.assert_close(model(x), wide(x), rtol=0, atol=1e-5)
    assert (model.host[0].out_channels == 6) == merge


def _first_step_units(config: KasminaConfig) -> tuple[Tensor, Tensor, Tensor]:
    model, operator, _ = _mlp(config)
    bring_to(operator, "w:2", lc.TRAINING, kernel_id="k-w2")
    kernel = model.seed("w:2").kernel
    assert kernel is not None
    before = kernel.ops.n_linear_0.weight.detach().clone()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    F.cross_entropy(model(x), torch.zeros(64, dtype=torch.long)).backward()
    hidden = torch.relu(model.host[0](x))  # what enters the widened layer "2"
    with torch.no_grad():
        pre = F.linear(hidden, kernel.ops.n_linear_0.weight, kernel.ops.n_linear_0.bias)
    return before, kernel.ops.n_linear_0.weight.detach().clone(), pre


def test_live_init_gives_the_new_units_their_own_weights_and_a_bias_that_makes_them_fire() -> None:
    before, after, pre = _first_step_units(WIDTH)
    assert not torch.equal(before, after)
    # Each unit fires on about half of the first batch: none starts dead.
    fire = (pre > 0).float().mean(dim=0)
    assert torch.all((fire > 0.4) & (fire < 0.6)), fire
    _, again, _ = _first_step_units(WIDTH)
    assert torch.equal(after, again)  # the same run makes the same units


def test_ir_init_keeps_the_compiled_weights() -> None:
    before, after, _ = _first_step_units(
        KasminaConfig(target_module_types=("ReLU",), width_seeds=True, width_init="ir")
    )
    assert torch.equal(before, after)
