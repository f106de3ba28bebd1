"""build_module: the eager reference of an IR, deterministic, mode-free and exportable."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.export import Dim, export

from esper.errors import InvalidArgument
from esper.ir import IRBuilder, build_module, example_input, parameter_count
from esper.leyline.v1 import blueprint_pb2
from tests.unit.ir.irs import every_op_ir, mlp_ir, node


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def test_output_shape_and_parameter_count() -> None:
    ir = every_op_ir()
    module = build_module(ir)
    x = example_input(ir, batch_size=3)
    assert x.shape == (3, 4, 6, 6)
    assert module(x).shape == (3, 4, 6, 6)
    assert sum(p.numel() for p in module.parameters()) == parameter_count(ir)


def test_invalid_ir_is_refused() -> None:
    ir = mlp_ir()
    node(ir, "relu_0").op_type = 0  # type: ignore[assignment]
    with pytest.raises(InvalidArgument) as caught:
        build_module(ir)
    assert caught.value.reason == "INVALID_IR"


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    first, second = _state(build_module(every_op_ir(7))), _state(build_module(every_op_ir(7)))
    assert torch.equal(torch.get_rng_state(), before)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_different_seed_different_weights() -> None:
    first, second = _state(build_module(every_op_ir(1))), _state(build_module(every_op_ir(2)))
    assert not torch.equal(first["ops.n_conv2d_0.weight"], second["ops.n_conv2d_0.weight"])


def test_weights_do_not_depend_on_node_order() -> None:
    ir = every_op_ir(3)
    reversed_ir = blueprint_pb2.BlueprintIR()
    reversed_ir.CopyFrom(ir)
    nodes = list(reversed(ir.nodes))
    del reversed_ir.nodes[:]
    reversed_ir.nodes.extend(nodes)
    first, second = _state(build_module(ir)), _state(build_module(reversed_ir))
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_init_scale_shrinks_the_last_layer() -> None:
    module = build_module(mlp_ir(dim=8, hidden=16))
    # Both layers draw from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the last is scaled by 0.1.
    assert module.ops["n_linear_0"].weight.abs().max() <= 1 / 8**0.5
    assert module.ops["n_linear_1"].weight.abs().max() <= 0.1 / 16**0.5


def test_same_in_train_and_eval() -> None:
    ir = every_op_ir()
    module = build_module(ir)
    x = example_input(ir, batch_size=4)
    module.train()
    train_out = module(x)
    module.eval()
    assert torch.equal(train_out, module(x))


def test_node_called_like_a_module_method() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_FEATURES, [4])
    ir = b.build(b.linear(b.input, 4, node_id="type"))
    assert build_module(ir)(torch.ones(2, 4)).shape == (2, 4)


def test_self_attention_matches_torch_multihead_attention() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_SEQUENCE, [5, 12])
    ir = b.build(b.self_attention(b.input, 3))
    module = build_module(ir)
    attention = module.ops["n_self_attention_0"]
    reference = nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(attention.qkv_weight)
        reference.in_proj_bias.copy_(attention.qkv_bias)
        reference.out_proj.weight.copy_(attention.out_weight)
        reference.out_proj.bias.copy_(attention.out_bias)
    x = example_input(ir, batch_size=2)
    expected, _ = reference(x, x, x, need_weights=False)
    torch.testing.assert_close(module(x), expected)


def test_image_layer_norm_normalizes_over_channels_and_space() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [3, 4, 4])
    ir = b.build(b.layer_norm(b.input))
    out = build_module(ir)(example_input(ir, batch_size=2) * 5 + 2)
    flat = out.reshape(2, -1)
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.var(dim=1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)


def test_conv_matches_torch_conv() -> None:
    b = IRBuilder(blueprint_pb2.INPUT_KIND_IMAGE, [4, 6, 6])
    ir = b.build(b.conv2d(b.input, 4, 3, groups=2))
    module = build_module(ir)
    conv = module.ops["n_conv2d_0"]
    reference = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    with torch.no_grad():
        reference.weight.copy_(conv.weight)
        reference.bias.copy_(conv.bias)
    x = example_input(ir, batch_size=2)
    torch.testing.assert_close(module(x), reference(x))


def test_example_input_is_deterministic() -> None:
    ir = mlp_ir()
    assert torch.equal(example_input(ir, 4, seed=1), example_input(ir, 4, seed=1))
    assert not torch.equal(example_input(ir, 4, seed=1), example_input(ir, 4, seed=2))


def test_exports_with_a_dynamic_batch() -> None:
    ir = every_op_ir()
    module = build_module(ir)
    program = export(module, (example_input(ir, 2),), dynamic_shapes=({0: Dim("batch", min=1, max=4096)},)).module()
    for batch in (1, 2, 7):
        x = example_input(ir, batch, seed=batch)
        torch.testing.assert_close(program(x), module(x))


def test_gradients_reach_every_parameter() -> None:
    ir = every_op_ir()
    module = build_module(ir)
    module(example_input(ir, 3)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
