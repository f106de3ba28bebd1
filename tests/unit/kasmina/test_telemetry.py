"""Seed telemetry: activation statistics, sampled gradient statistics, and the reports built from them."""

from __future__ import annotations

import math

import pytest
import torch

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.ramp import COSINE_RAMP, DRIFT_CONTROLLED, LINEAR_RAMP, AlphaRamp
from esper.kasmina.telemetry import ActivationStats, unit_rows
from esper.leyline.v1 import blueprint_pb2
from tests.support.kasmina import bring_to, mlp_setup, train_steps

FEATURES = blueprint_pb2.INPUT_KIND_FEATURES
IMAGE = blueprint_pb2.INPUT_KIND_IMAGE


def test_activation_statistics_on_a_known_activation() -> None:
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # units: dead (always 0), a, 2a (perfectly correlated with a), -a (anti-correlated, never fires)
    x = torch.stack([torch.zeros(4), a, 2 * a, -a], dim=1)  # [rows=4, units=4]
    stats = ActivationStats(FEATURES, max_units=8, max_rows=64)
    stats.observe(x[:2])
    stats.observe(x[2:])
    summary = stats.summary()
    variance_a = a.var(unbiased=False).item()  # 1.25
    assert summary.chunk_variance == pytest.approx((0 + variance_a + 4 * variance_a + variance_a) / 4)
    assert summary.dead_node_ratio == pytest.approx(0.5)
    assert summary.avg_correlation == pytest.approx(1.0)  # the constant unit is left out
    assert summary.activation_mean == pytest.approx(x.mean().item())
    assert summary.activation_std == pytest.approx(x.std(unbiased=False).item())
    assert summary.rows == 4


def test_correlation_of_independent_units_is_small_and_sampling_is_bounded() -> None:
    generator = torch.Generator().manual_seed(0)
    stats = ActivationStats(FEATURES, max_units=4, max_rows=500)
    for _ in range(4):
        stats.observe(torch.randn(1000, 64, generator=generator))
    summary = stats.summary()
    assert summary.avg_correlation < 0.1
    assert summary.dead_node_ratio == 0.0
    assert summary.chunk_variance == pytest.approx(1.0, abs=0.05)


def test_image_units_are_channels() -> None:
    x = torch.zeros(2, 3, 4, 4)
    x[:, 1] = 1.0
    rows = unit_rows(x, IMAGE)
    assert rows.shape == (2 * 4 * 4, 3)
    stats = ActivationStats(IMAGE, max_units=8, max_rows=64)
    stats.observe(x)
    assert stats.summary().dead_node_ratio == pytest.approx(2 / 3)


def test_empty_pass_reports_zeros() -> None:
    summary = ActivationStats(FEATURES, max_units=8, max_rows=8).summary()
    assert (summary.chunk_variance, summary.dead_node_ratio, summary.rows) == (0.0, 0.0, 0)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (LINEAR_RAMP, [0.25, 0.5, 0.75, 1.0, 1.0]),
        (COSINE_RAMP, [(1 - math.cos(math.pi * k / 4)) / 2 for k in (1, 2, 3, 4, 4)]),
    ],
)
def test_alpha_ramp_values(strategy: int, expected: list[float]) -> None:
    ramp = AlphaRamp(strategy, 4)
    assert ramp.alpha == 0.0
    values = [ramp.advance() for _ in expected]
    assert values == pytest.approx(expected)
    assert ramp.done


def test_drift_controlled_ramp_holds_while_the_loss_rises() -> None:
    ramp = AlphaRamp(DRIFT_CONTROLLED, 4, smoothing=0.0)
    assert ramp.advance(1.0) == 0.25  # first loss: nothing to compare with
    assert ramp.advance(0.9) == 0.5  # falling: advance
    assert ramp.advance(1.5) == 0.5  # rising: hold
    assert ramp.advance(float("nan")) == 0.5  # not finite: hold
    assert ramp.advance(1.4) == 0.75
    assert ramp.advance(None) == 1.0  # no loss given: linear
    assert ramp.done


def test_reports_carry_stage_statistics_kernel_and_sampled_gradients() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), gradient_sample_every=1, training_min_steps=2)
    model, operator, _, _ = mlp_setup(config)
    bring_to(operator, "1", lc.TRAINING)
    train_steps(model, 3)
    seed = model.seed("1")
    assert seed.gradient_norm > 0.0
    with model.collecting_telemetry(), torch.no_grad():
        model(torch.randn(64, 8))
    assert all(not s.hooked for s in model.seed_list() if s.stage == lc.DORMANT)
    training, dormant = operator.on_epoch_end(0)
    assert (training.seed_id, training.stage, training.epoch) == ("1", lc.TRAINING, 0)
    assert training.kernel_id == "k-mlp" and training.parameter_count == 544
    assert training.is_ready_for_transition and training.gradient_norm == seed.gradient_norm
    assert training.seed_loss != 0.0
    assert training.global_step == 3
    assert dormant.stage == lc.DORMANT and dormant.kernel_id == "" and dormant.gradient_norm == 0.0
    for report in (training, dormant):
        assert report.chunk_variance > 0.0 and 0.0 <= report.dead_node_ratio <= 1.0
        assert 0.0 <= report.avg_correlation <= 1.0 and report.activation_std > 0.0
    # Nothing collected in the next epoch: the activation statistics are not carried over.
    again, _ = operator.on_epoch_end(1)
    assert again.chunk_variance == 0.0 and again.seed_loss == 0.0


def test_gradient_norm_is_the_kernel_parameter_gradient_norm_at_a_sampled_step() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), gradient_sample_every=2)
    model, operator, _, _ = mlp_setup(config)
    bring_to(operator, "3", lc.GRAFTING)
    seed = model.seed("3")
    train_steps(model, 2)  # step 2 arms a sample for step 3
    assert seed.gradient_norm == 0.0
    model.zero_grad(set_to_none=True)
    model(torch.randn(16, 8)).pow(2).mean().backward()
    expected = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in seed.trainable_parameters()))
    model.step()
    assert seed.gradient_norm == pytest.approx(expected)


def test_seed_loss_is_the_linearized_loss_change_of_grafting() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), gradient_sample_every=1)
    model, operator, _, _ = mlp_setup(config)
    bring_to(operator, "3", lc.TRAINING)
    seed = model.seed("3")
    train_steps(model, 1)  # arms a sample for the next step
    seed.take_seed_loss()
    x = torch.randn(16, 8)
    captured: dict[str, torch.Tensor] = {}
    handle = model.host[4].register_forward_pre_hook(lambda m, args: captured.__setitem__("h", args[0]))
    out = model(x)
    handle.remove()
    captured["h"].retain_grad()
    out.sum().backward()
    model.step()
    assert seed.kernel is not None
    with torch.no_grad():
        delta = seed.kernel(captured["h"].detach())
    assert captured["h"].grad is not None
    expected = float((captured["h"].grad * delta).sum())
    assert seed.take_seed_loss() == pytest.approx(expected, rel=1e-5)
