"""Tolaria's config sections refuse bad values wherever they are built: YAML, flags or the SDK."""

from __future__ import annotations

import pytest

from esper.config import parse_config
from esper.errors import InvalidArgument
from esper.tolaria.config import RunConfig, TolariaConfig


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: TolariaConfig(checkpoint_every=0), "tolaria.checkpoint_every"),
        (lambda: TolariaConfig(divergence_factor=1.0), "tolaria.divergence_factor"),
        (lambda: TolariaConfig(seed_learning_rate=float("nan")), "tolaria.seed_learning_rate"),
        (lambda: TolariaConfig(max_rollbacks=-1), "tolaria.max_rollbacks"),
        (lambda: RunConfig(epochs=0), "run.epochs"),
        (lambda: RunConfig(batch_size=0), "run.batch_size"),
        (lambda: RunConfig(validation_fraction=1.0), "run.validation_fraction"),
    ],
)
def test_sdk_configs_refuse_bad_values_naming_the_dotted_key(build: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        build()  # type: ignore[operator]
    assert [v.field for v in caught.value.violations] == [field]
    # A ValueError too, as Python code building a config expects.
    assert isinstance(caught.value, ValueError)


def test_the_loader_and_the_sdk_name_the_same_key() -> None:
    with pytest.raises(InvalidArgument) as from_yaml:
        parse_config("tolaria:\n  checkpoint_every: 0\n")
    with pytest.raises(InvalidArgument) as from_sdk:
        TolariaConfig(checkpoint_every=0)
    assert from_yaml.value.violations == from_sdk.value.violations
