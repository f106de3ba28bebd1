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
    # No token reads a later one (the norm is per token in eval mode): causal sites.
    assert layout == [
        ("early", 0, blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE, [3, 6]),
        ("late", 1, blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE, [3, 6]),
    ]
    assert torch.equal(model.norm.running_mean, stats)  # the dry forward ran in eval mode
    assert model.training and model.norm.training  # and the modes were restored


class Mixing(nn.Module):
    """Every token reads the mean of all tokens after `mix`: not causal there."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 6)
        self.mix = nn.Linear(6, 6)

    def forward(self, x: Tensor) -> Tensor:
        h = self.first(x)
        return self.mix(h + h.mean(dim=1, keepdim=True))


def test_a_site_whose_earlier_tokens_read_later_ones_is_a_bidirectional_sequence() -> None:
    config = KasminaConfig(target_module_types=("Linear",))
    causal, bidirectional = blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE, blueprint_pb2.INPUT_KIND_SEQUENCE
    assert [kind for _, _, kind, _ in _layout(Mixing(), config, torch.randn(2, 5, 4))] == [causal, bidirectional]
    forced = KasminaConfig(target_module_types=("Linear",), sequence_mixing="bidirectional")
    assert {kind for _, _, kind, _ in _layout(Mixing(), forced, torch.randn(2, 5, 4))} == {bidirectional}
    token_ids = torch.randint(0, 7, (2, 5))
    embedded = nn.Sequential(nn.Embedding(7, 4), Mixing())
    assert [kind for _, _, kind, _ in _layout(embedded, config, token_ids)] == [causal, bidirectional]


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
        (nn.Sequential(nn.Linear(8, 4)), KasminaConfig(), torch.randn(2, 8), "targets", "no repeated blocks"),
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


class Block(nn.Module):
    """A pre-norm residual block with a functional activation (no activation module)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.nn.functional.gelu(self.fc(self.norm(x)))


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.blocks = nn.ModuleList([Block(8), Block(8)])
        self.head = nn.Linear(8, 11)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_by_default_seeds_follow_blocks_in_models_without_activation_modules() -> None:
    wrapped = wrap(TinyTransformer(), example_input=torch.randint(0, 11, (2, 6)))
    assert [(d.seed_id, d.input_kind, list(d.input_shape.dims)) for d in wrapped.seed_layout()] == [
        ("blocks.0", blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE, [6, 8]),
        ("blocks.1", blueprint_pb2.INPUT_KIND_CAUSAL_SEQUENCE, [6, 8]),
    ]


def test_by_default_seeds_follow_activations_when_there_are_no_blocks() -> None:
    wrapped = wrap(mlp_host(), example_input=torch.randn(2, 8))
    depth = [d.seed_id for d in wrapped.seed_layout() if d.growth_kind != blueprint_pb2.GROWTH_KIND_WIDTH]
    assert depth == ["1", "3"]
    assert any(d.growth_kind == blueprint_pb2.GROWTH_KIND_WIDTH for d in wrapped.seed_layout())


def test_targets_name_module_types_and_paths() -> None:
    wrapped = wrap(TinyTransformer(), example_input=torch.randint(0, 11, (2, 6)), targets=["blocks.1", "LayerNorm"])
    assert [d.seed_id for d in wrapped.seed_layout()] == ["blocks.0.norm", "blocks.1.norm", "blocks.1"]
    with pytest.raises(InvalidArgument) as caught:
        wrap(TinyTransformer(), example_input=torch.randint(0, 11, (2, 6)), targets=["blocks.7"])
    assert caught.value.violations[0].field == "targets" and "blocks.7" in caught.value.message
