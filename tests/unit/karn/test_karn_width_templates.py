"""Width templates: "add k units" blocks that equal widening the layer they grow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper.errors import InvalidArgument
from esper.ir import build_module, parameter_count
from esper.karn import TemplateCatalog
from esper.leyline.v1 import blueprint_pb2

WIDTH = blueprint_pb2.GROWTH_KIND_WIDTH
DEPTH = blueprint_pb2.GROWTH_KIND_DEPTH
FEATURES = blueprint_pb2.INPUT_KIND_FEATURES
IMAGE = blueprint_pb2.INPUT_KIND_IMAGE


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.default()


def _weights(block: nn.Module) -> list[torch.Tensor]:
    return [p.detach() for p in block.parameters()]


def test_width_query_returns_width_templates_only(catalog: TemplateCatalog) -> None:
    found = catalog.query(input_kind=FEATURES, input_shape=(6,), growth_kind=WIDTH, output_shape=(4,))
    assert [t.template_id for t in found] == ["widen_k1", "widen_k2", "widen_k4", "widen_k8", "widen_k16"]
    assert all(t.growth_kind == WIDTH and list(t.ir.output_shape.dims) == [4] for t in found)
    # k new units: k * (6 + 1) in, 4 * k out (no bias: widening adds no bias to the next layer).
    assert [t.parameter_estimate for t in found] == [k * 7 + 4 * k for k in (1, 2, 4, 8, 16)]
    depth = catalog.query(input_kind=FEATURES, input_shape=(6,))
    assert depth and all(t.growth_kind in (0, DEPTH) for t in depth)
    assert not any(t.template_id.startswith("widen") for t in depth)


def test_width_template_needs_an_output_shape(catalog: TemplateCatalog) -> None:
    with pytest.raises(InvalidArgument, match="needs the output shape"):
        catalog.instantiate("widen_k2", (6,))


def test_linear_widening_is_exact(catalog: TemplateCatalog) -> None:
    host = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 5))
    block = build_module(catalog.instantiate("widen_k4", (6,), output_shape=(5,)).ir)
    w_in, b_in, w_out = _weights(block)
    k = w_in.shape[0]
    wide = nn.Sequential(nn.Linear(6, 4 + k), nn.ReLU(), nn.Linear(4 + k, 5))
    with torch.no_grad():
        wide[0].weight.copy_(torch.cat([host[0].weight, w_in]))
        wide[0].bias.copy_(torch.cat([host[0].bias, b_in]))
        wide[2].weight.copy_(torch.cat([host[2].weight, w_out], dim=1))
        wide[2].bias.copy_(host[2].bias)
    x = torch.randn(32, 6)
    with torch.no_grad():
        torch.testing.assert_close(host(x) + block(x), wide(x), rtol=0, atol=1e-6)


def _conv(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)


@pytest.mark.parametrize("pool", [True, False])
def test_conv_widening_is_exact(catalog: TemplateCatalog, pool: bool) -> None:
    between = [nn.ReLU(), nn.MaxPool2d(2)] if pool else [nn.ReLU()]
    host = nn.Sequential(_conv(2, 3), *between, _conv(3, 5))
    side = 4 if pool else 8
    block = build_module(catalog.instantiate("widen_conv3_k2", (2, 8, 8), output_shape=(5, side, side)).ir)
    w_in, b_in, w_out = _weights(block)
    wide = nn.Sequential(_conv(2, 5), *between, _conv(5, 5))
    with torch.no_grad():
        wide[0].weight.copy_(torch.cat([host[0].weight, w_in]))
        wide[0].bias.copy_(torch.cat([host[0].bias, b_in]))
        wide[-1].weight.copy_(torch.cat([host[-1].weight, w_out], dim=1))
        wide[-1].bias.copy_(host[-1].bias)
    x = torch.randn(4, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(host(x) + block(x), wide(x), rtol=0, atol=1e-5)


def test_conv_into_a_classifier_after_pool_and_flatten_is_exact(catalog: TemplateCatalog) -> None:
    host = nn.Sequential(_conv(1, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 10))
    block = build_module(catalog.instantiate("widen_conv3_k4", (1, 8, 8), output_shape=(10,)).ir)
    w_in, b_in, w_out = _weights(block)
    wide = nn.Sequential(_conv(1, 6), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 10))
    with torch.no_grad():
        wide[0].weight.copy_(torch.cat([host[0].weight, w_in]))
        wide[0].bias.copy_(torch.cat([host[0].bias, b_in]))
        # Flattening [C + k, h, w] puts the new channels' columns after the old ones.
        wide[-1].weight.copy_(torch.cat([host[-1].weight, w_out], dim=1))
        wide[-1].bias.copy_(host[-1].bias)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(host(x) + block(x), wide(x), rtol=0, atol=1e-5)


def test_conv_width_parameters(catalog: TemplateCatalog) -> None:
    template = catalog.instantiate("widen_conv3_k2", (3, 8, 8), output_shape=(10,))
    assert template.parameter_estimate == parameter_count(template.ir) == 2 * (3 * 9 + 1) + 2 * 4 * 4 * 10


@pytest.mark.parametrize(
    ("input_shape", "output_shape", "why"),
    [
        ((3, 8, 8), (4, 3, 3), "neither the layer's 8x8 nor half"),
        ((6,), (4, 2, 2), "features widen into features"),
    ],
)
def test_shapes_no_host_pattern_gives_are_refused(
    catalog: TemplateCatalog, input_shape: tuple[int, ...], output_shape: tuple[int, ...], why: str
) -> None:
    template_id = "widen_conv3_k2" if len(input_shape) == 3 else "widen_k2"
    with pytest.raises(InvalidArgument, match=why):
        catalog.instantiate(template_id, input_shape, output_shape=output_shape)
