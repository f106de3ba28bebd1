"""The run-time isolation check: leaks are detected, counted, reported, and the seed is culled."""

from __future__ import annotations

import copy
import types

import torch
from torch import Tensor, nn

from esper.kasmina import lifecycle as lc
from esper.kasmina.config import KasminaConfig
from esper.kasmina.isolation import straight_through
from esper.kasmina.operator import KasminaOperator
from esper.kasmina.seed import KasminaSeed
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import kasmina_pb2
from tests.support.kasmina import RUN_ID, FakeKernelSource, bring_to, features_source, mlp_host, mlp_setup, train_steps

CHECK_EVERY_STEP = KasminaConfig(target_module_types=("ReLU",), isolation_check_every=1, embargo_epochs=3)


def _leak_gradient(seed: KasminaSeed) -> None:
    """A seed path that forgets to detach the kernel's input: the value is right, the gradient leaks."""

    def leaky(self: KasminaSeed, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        assert self.kernel is not None
        s = self.kernel(x)
        return straight_through(h, s, 1.0), s

    seed._training_output = types.MethodType(leaky, seed)  # type: ignore[method-assign]


def _leak_forward(seed: KasminaSeed) -> None:
    """A seed path that blends while TRAINING: the host's output changes."""

    def blending(self: KasminaSeed, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        assert self.kernel is not None
        s = self.kernel(x.detach())
        return h + 0.5 * s, s

    seed._training_output = types.MethodType(blending, seed)  # type: ignore[method-assign]


def _grads(model: nn.Module, x: Tensor, y: Tensor) -> list[Tensor]:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_gradient_leak_is_detected_corrected_counted_reported_and_culled() -> None:
    model, operator, _, events = mlp_setup(CHECK_EVERY_STEP)
    reference = copy.deepcopy(model.host)
    bring_to(operator, "1", lc.TRAINING)
    seed = model.seed("1")
    _leak_gradient(seed)
    operator.drain_transitions()
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))

    host_grads = _grads(model.host, x, y)

    # The host still got exactly the gradients it would have had without the seed.
    assert all(torch.equal(a, b) for a, b in zip(host_grads, _grads(reference, x, y), strict=True))
    assert seed.isolation_violations == 1
    assert seed.stage == lc.CULLED and seed.kernel is None and not seed.hooked
    assert seed.embargo_until_epoch == 3
    assert [v.kind for v in events.violations] == ["gradient"]
    assert events.violations[0].seed_id == "1" and events.violations[0].violations == 1
    [transition] = operator.drain_transitions()
    assert (transition.from_stage, transition.to_stage) == (lc.TRAINING, lc.CULLED)
    assert "isolation violation (gradient)" in transition.reason
    assert seed.last_transition_reason == transition.reason
    states = operator.list_seed_states(kasmina_pb2.ListSeedStatesRequest(run_id=RUN_ID)).seeds
    assert [state.isolation_violations for state in states] == [1, 0]


def test_forward_leak_is_detected_and_the_host_output_kept() -> None:
    model, operator, _, events = mlp_setup(CHECK_EVERY_STEP)
    reference = copy.deepcopy(model.host)
    bring_to(operator, "3", lc.TRAINING)
    _leak_forward(model.seed("3"))
    x = torch.randn(8, 8)
    assert torch.equal(model(x), reference(x))
    assert [v.kind for v in events.violations] == ["forward"]
    assert model.seed("3").stage == lc.CULLED


def test_kernel_sharing_host_parameters_is_a_violation() -> None:
    model, operator, _, events = mlp_setup(CHECK_EVERY_STEP)
    bring_to(operator, "1", lc.TRAINING)
    seed = model.seed("1")
    seed.kernel = model.host[2]  # a kernel that aliases a host layer (16 -> 16)
    model(torch.randn(4, 8))
    assert [v.kind for v in events.violations] == ["parameters"]
    assert "weight" in events.violations[0].detail
    assert seed.stage == lc.CULLED


def test_kernel_sharing_host_parameters_is_refused_at_load() -> None:
    holder: dict[str, nn.Module] = {}
    source = FakeKernelSource(factories={"k-alias": lambda: holder["layer"]})
    model, operator, _, _ = mlp_setup(CHECK_EVERY_STEP, source)
    holder["layer"] = model.host[2]
    bring_to(operator, "1", lc.GERMINATED, kernel_id="k-alias")
    from tests.support.kasmina import advance

    response = advance(operator, "1", lc.LOADING, "load")
    assert response.stage == lc.CULLED
    assert "shares parameters" in model.seed("1").last_transition_reason


def test_checks_are_sampled_first_step_of_each_epoch_and_every_n_steps() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), isolation_check_every=0)
    model, operator, _, events = mlp_setup(config, features_source())
    bring_to(operator, "1", lc.TRAINING)
    train_steps(model, 1)  # the first step after entering TRAINING is checked: clean
    _leak_gradient(model.seed("1"))
    train_steps(model, 3)  # not sampled: the leak goes unseen
    assert events.violations == [] and model.seed("1").stage == lc.TRAINING
    operator.on_epoch_end(0)
    train_steps(model, 1)  # first step of the next epoch
    assert [v.kind for v in events.violations] == ["gradient"]

    config = KasminaConfig(target_module_types=("ReLU",), isolation_check_every=3)
    model, operator, _, events = mlp_setup(config, features_source())
    bring_to(operator, "1", lc.TRAINING)
    train_steps(model, 1)
    _leak_gradient(model.seed("1"))
    train_steps(model, 2)  # steps 2, 3: not checked
    assert events.violations == []
    train_steps(model, 1)  # step 4, armed after step 3
    assert len(events.violations) == 1


def test_events_sink_failure_does_not_stop_the_cull() -> None:
    class Broken:
        def isolation_violation(self, violation: object) -> None:
            raise RuntimeError("alerting is down")

    model = wrap(mlp_host(), CHECK_EVERY_STEP, example_input=torch.randn(2, 8))
    operator = KasminaOperator(
        model, features_source(), run_id=RUN_ID, on_isolation_violation=Broken().isolation_violation
    )
    bring_to(operator, "1", lc.TRAINING)
    _leak_forward(model.seed("1"))
    model(torch.randn(2, 8))
    assert model.seed("1").stage == lc.CULLED
