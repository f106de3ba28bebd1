"""Default hosts: layout, seed sites, deterministic init, spec round trip."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from esper.errors import InvalidArgument
from esper.hosts import HostSpec, build_host, default_host_spec, default_seed_sites
from esper.hosts.blocks import transformer_parameters
from esper.leyline.v1 import blueprint_pb2


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_mlp_for_features() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_FEATURES, (64,), 10, None)
    assert (spec.kind, spec.width, spec.depth) == ("mlp", 16, 2)
    host = build_host(spec)
    assert [name for name, _ in host.named_children()] == ["fc1", "act1", "fc2", "act2", "classifier"]
    assert _params(host) == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    assert host(torch.zeros(5, 64)).shape == (5, 10)


def test_default_cnn_for_images() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_IMAGE, (1, 28, 28), 10, None)
    assert (spec.kind, spec.width) == ("cnn", 3)
    host = build_host(spec)
    convs = [m for m in host.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 3, (3, 3), (1, 1)),
        (3, 3, (3, 3), (1, 1)),
    ]
    assert isinstance(host.classifier, nn.Linear) and host.classifier.in_features == 3 * 7 * 7
    assert host(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [(blueprint_pb2.INPUT_KIND_FEATURES, (2,)), (blueprint_pb2.INPUT_KIND_IMAGE, (3, 9, 9))],
)
def test_seed_sites_are_the_hidden_relus_in_order(kind: blueprint_pb2.InputKind, shape: tuple[int, ...]) -> None:
    host = build_host(default_host_spec(kind, shape, 3, 4, depth=3))
    relus = [name for name, module in host.named_modules() if type(module).__name__ == "ReLU"]
    assert relus == list(host.seed_sites) == list(default_seed_sites(host.spec)) == ["act1", "act2", "act3"]
    assert all(not module.inplace for module in host.modules() if isinstance(module, nn.ReLU))


def test_no_normalization_or_dropout() -> None:
    for spec in (
        default_host_spec(blueprint_pb2.INPUT_KIND_FEATURES, (8,), 3),
        default_host_spec(blueprint_pb2.INPUT_KIND_IMAGE, (1, 8, 8), 3),
    ):
        kinds = {type(m).__name__ for m in build_host(spec).modules()}
        assert not {k for k in kinds if "Norm" in k or "Dropout" in k}


def test_width_is_honoured() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_FEATURES, (8,), 3, 32)
    assert build_host(spec).state_dict()["fc1.weight"].shape == (32, 8)


def test_same_spec_same_weights_and_global_rng_untouched() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_IMAGE, (1, 8, 8), 4, init_seed=11)
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    a, b = build_host(spec), build_host(spec)
    assert torch.equal(torch.rand(1), expected)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)
    other = build_host(HostSpec(**{**spec.to_dict(), "input_shape": (1, 8, 8), "init_seed": 12}))
    assert not torch.equal(a.state_dict()["conv1.weight"], other.state_dict()["conv1.weight"])


def test_spec_round_trips_through_json() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_IMAGE, [3, 16, 16], 7, 5, init_seed=2)
    again = HostSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    host, rebuilt = build_host(spec), build_host(again)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(host(x), rebuilt(x))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "mlp", "input_shape": [4], "num_classes": 3, "width": 8, "colour": 1}, "host.colour"),
        ({"kind": "mlp", "input_shape": [4], "num_classes": 3}, "host.width"),
        ({"kind": "rnn", "input_shape": [4], "num_classes": 3, "width": 8}, "host.kind"),
        ({"kind": "mlp", "input_shape": [4], "num_classes": 3, "width": 8.0}, "host.width"),
        ({"kind": "mlp", "input_shape": [4], "num_classes": 3, "width": 0}, "host.width"),
        ({"kind": "mlp", "input_shape": [4, 4], "num_classes": 3, "width": 8}, "host.input_shape"),
        ({"kind": "cnn", "input_shape": [1, 3, 3], "num_classes": 3, "width": 8}, "host.input_shape"),
        ({"kind": "mlp", "input_shape": [4], "num_classes": 1, "width": 8}, "host.num_classes"),
    ],
)
def test_bad_specs_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        HostSpec.from_dict(data)
    assert info.value.violations[0].field == field


def test_the_default_host_for_token_sequences_is_a_small_causal_transformer() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_SEQUENCE, (16,), 40)
    assert (spec.kind, spec.width, spec.depth) == ("transformer", 16, 1)
    host = build_host(spec)
    tokens = torch.randint(0, 40, (3, 16))
    logits = host(tokens)
    assert logits.shape == (3, 16, 40)
    assert _params(host) == transformer_parameters(40, 16, 16, 1)
    later = tokens.clone()
    later[:, 9:] = (later[:, 9:] + 1) % 40
    with torch.no_grad():
        assert torch.equal(host(later)[:, :9], logits[:, :9].detach())  # token t never reads t + 1
    assert default_seed_sites(spec) == ("blocks.0",)
    assert HostSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_residual_cnn_host_for_images() -> None:
    spec = default_host_spec(blueprint_pb2.INPUT_KIND_IMAGE, (1, 8, 8), 10, kind="rescnn")
    assert (spec.kind, spec.width, spec.depth) == ("rescnn", 8, 2)
    host = build_host(spec)
    assert host(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    assert default_seed_sites(spec) == ("blocks.0", "blocks.1")
    kinds = {type(m).__name__ for m in host.modules()}
    assert not {k for k in kinds if "Norm" in k or "Dropout" in k}
    same = build_host(spec)
    assert all(torch.equal(a, b) for a, b in zip(host.state_dict().values(), same.state_dict().values(), strict=True))


def test_a_host_that_cannot_take_the_inputs_is_refused_naming_the_kind() -> None:
    with pytest.raises(InvalidArgument) as info:
        default_host_spec(blueprint_pb2.INPUT_KIND_FEATURES, (4,), 3, kind="transformer")
    assert info.value.violations[0].field == "host.kind"
    with pytest.raises(InvalidArgument) as unknown:
        default_host_spec(blueprint_pb2.INPUT_KIND_FEATURES, (4,), 3, kind="lstm")
    assert unknown.value.violations[0].field == "host.kind"
