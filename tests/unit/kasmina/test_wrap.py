"""wrap(): targets by module type and path, descriptors from a dry forward, and refusals naming the key."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from esper.errors import InvalidArgument
from esper.kasmina.config import KasminaConfig
from esper.kasmina.wrapping import wrap
from esper.leyline.v1 import blueprint_pb2
from tests.support.kasmina import cnn_host, mlp_host


def _layout(model: nn.Module, config: KasminaConfig, example: Tensor) -> list[tuple[str, int, int, list[int]]]:
    wrapped = wrap(model, config, example_input=example)
    return [(d.seed_id, d.layer_index, d.input_kind, list(d.input_shape.dims)) for d in wrapped.seed_layout()]


def test_targets_by_type_on_mlp_and_cnn() -> None:
    relu = KasminaConfig(target_module_types=("ReLU",))
    features, image = blueprint_pb2.INPUT_KIND_FEATURES, blueprint_pb2.INPUT_KIND_IMAGE
    assert _layout(mlp_host(), relu, torch.randn(2, 8)) == [
        ("1", 0, features, [16]),
        ("3", 1, features, [16]),
    ]
    assert _layout(cnn_host(), relu, torch.randn(2, 1, 8, 8)) == [
        ("1", 0, image, [4, 8, 8]),
        ("4", 1, image, [4, 4, 4]),
    ]


def test_targets_by_path_and_type_together() -> None:
    config = KasminaConfig(target_module_types=("ReLU",), target_module_paths=("2",))
    assert [seed_id for seed_id, *_ in _layout(mlp_host(), config, torch.randn(2, 8))] == ["1", "2", "3"]


class Tokens(nn.Module):
    """Registered in one order, run in another; a [batch, tokens, features] activation."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(6, 6)
        self.early = nn.Linear(4, 6)
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x: Tensor) -> Tensor:
        return self.late(torch.relu(self.norm(self.early(x))))


def test_layout_follows_execution_order_and_sequences_are_recognized() -> None:
    config = KasminaConfig(target_module_types=("Linear",))
    model = Tokens()
    model.train()
    stats = model.norm.running_mean.clone()
    layout = _layout(model, config, torch.randn(5, 3, 4))
    assert layout == [
        ("early", 0, blueprint_pb2.INPUT_KIND_SEQUENCE, [3, 6]),
        ("late", 1, blueprint_pb2.INPUT_KIND_SEQUENCE, [3, 6]),
    ]
    assert torch.equal(model.norm.running_mean, stats)  # the dry forward ran in eval mode
    assert model.training and model.norm.training  # and the modes were restored


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.fc(self.act(x)))


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 4, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return out


@pytest.mark.parametrize(
    ("model", "config", "example", "field", "words"),
    [
        (
            mlp_host(),
            KasminaConfig(target_module_paths=("9",)),
            torch.randn(2, 8),
            "kasmina.target_module_paths",
            "9",
        ),
        (
            mlp_host(),
            KasminaConfig(target_module_types=("Conv2d",)),
            torch.randn(2, 8),
            "kasmina.target_module_types",
            "Conv2d",
        ),
        (mlp_host(), KasminaConfig(), torch.randn(2, 8), "kasmina.target_module_types", "no target"),
        (
            mlp_host(),
            KasminaConfig(target_module_types=("ReLU",), max_seeds=1),
            torch.randn(2, 8),
            "kasmina.max_seeds",
            "2",
        ),
        (
            Shared(),
            KasminaConfig(target_module_types=("ReLU",)),
            torch.randn(2, 4),
            "kasmina.target_module_paths",
            "more than once",
        ),
        (
            TupleOut(),
            KasminaConfig(target_module_types=("GRU",)),
            torch.randn(2, 3, 4),
            "kasmina.target_module_paths",
            "tuple",
        ),
        (
            nn.Sequential(nn.Identity()),
            KasminaConfig(target_module_paths=("0",)),
            torch.randn(2, 1, 2, 2, 2),
            "kasmina.target_module_paths",
            "rank",
        ),
    ],
)
def test_bad_targets_are_refused_naming_the_config_key(
    model: nn.Module, config: KasminaConfig, example: Tensor, field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        wrap(model, config, example_input=example)
    assert caught.value.violations[0].field == field
    assert words in caught.value.message
    assert all(not module._forward_hooks for module in model.modules())


def test_config_validates_its_values() -> None:
    with pytest.raises(ValueError, match="grafting_strategy"):
        KasminaConfig(grafting_strategy="SUDDEN")
    with pytest.raises(ValueError, match="ramp_steps"):
        KasminaConfig(ramp_steps=0)
    assert KasminaConfig(target_module_types=["ReLU"]).target_module_types == ("ReLU",)  # type: ignore[arg-type]
