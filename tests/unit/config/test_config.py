"""Loading the Esper config: defaults, YAML, overrides, and errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

import esper
from esper.config import (
    EsperConfig,
    KasminaConfig,
    RunConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_config,
)
from esper.errors import InvalidArgument

TARGETS = "kasmina.target_module_types"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "esper.yaml"
    path.write_text(text)
    return path


def _error(text: str, overrides: dict[str, Any] | None = None) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        parse_config(text, overrides)
    return info.value


def test_defaults() -> None:
    config = load_config()
    assert config == EsperConfig()
    assert (config.run.epochs, config.run.seed, config.run.batch_size) == (40, 0, 64)
    assert config.run.learning_rate == 1e-2 and config.run.host_width is None and config.run.static is False
    assert config.tolaria.checkpoint_every == 1 and config.tolaria.hook_budget_ms == 18.0
    assert config.kasmina.target_module_types == () and config.kasmina.target_module_paths == ()  # default sites
    assert config.assets.pipelines == ("fast", "standard") and config.assets.template_ids == ()
    assert config.assets.wait_for_kernels is False, "a run never waits for compiles unless asked to"
    assert config.assets.data_path == Path("~/.cache/esper/assets").expanduser()


def test_sdk_name_reads_a_file_with_one_argument(tmp_path: Path) -> None:
    path = _write(tmp_path, "run:\n  dataset: spirals\n  epochs: 5\n  learning_rate: 1e-3\n")
    config = esper.load_config(path)
    assert config.run.dataset == "spirals" and config.run.epochs == 5
    assert config.run.learning_rate == pytest.approx(1e-3)
    # Untouched sections and keys keep their defaults.
    assert config.run.batch_size == 64 and config.tolaria == EsperConfig().tolaria
    assert esper.load_config(str(path)) == config


def test_nested_sections_of_other_components() -> None:
    config = parse_config(
        "kasmina:\n  ramp_steps: 20\n  target_module_paths: [act1]\n"
        "tamiyo:\n  patience: 4\n  preferred_tags: []\n"
        "assets:\n  pipelines: [standard]\n  wait_for_kernels: true\n"
    )
    assert config.kasmina.ramp_steps == 20 and config.kasmina.target_module_paths == ("act1",)
    assert config.kasmina.width_seeds is True  # the run default, not KasminaConfig's own
    assert config.tamiyo.patience == 4 and config.tamiyo.preferred_tags == ()
    assert config.assets.pipelines == ("standard",) and config.assets.wait_for_kernels is True


def test_overrides_win_over_the_file_and_none_is_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, "run:\n  epochs: 5\n  seed: 3\n")
    config = load_config(
        path, {"run.epochs": 7, "run.host_width": None, "run": {"out": "/tmp/r"}, "tolaria.max_rollbacks": 0}
    )
    assert (config.run.epochs, config.run.seed, config.run.out) == (7, 3, "/tmp/r")
    assert config.run.host_width is None and config.tolaria.max_rollbacks == 0


@pytest.mark.parametrize(
    ("text", "field", "known"),
    [
        ("runn:\n  epochs: 3\n", "runn", "run, tamiyo, tolaria"),
        ("run:\n  epoch: 3\n", "run.epoch", "epochs"),
        ("kasmina:\n  ramp_step: 3\n", "kasmina.ramp_step", "ramp_steps"),
    ],
)
def test_unknown_key_is_named_with_the_known_keys(text: str, field: str, known: str) -> None:
    error = _error(text)
    assert error.violations[0].field == field
    assert "unknown key" in str(error) and known in str(error)


def test_unknown_override_key_is_named() -> None:
    error = _error("", {"run.epochz": 3})
    assert error.violations[0].field == "run.epochz"


@pytest.mark.parametrize(
    ("text", "field", "expected", "given"),
    [
        ("run:\n  epochs: ten\n", "run.epochs", "expected int", "got str"),
        ("run:\n  epochs: 3.5\n", "run.epochs", "expected int", "got float"),
        ("run:\n  epochs: true\n", "run.epochs", "expected int", "got bool"),
        ("run:\n  static: 1\n", "run.static", "expected bool", "got int"),
        ("run:\n  learning_rate: fast\n", "run.learning_rate", "expected float", "got str"),
        ("run:\n  host_width: wide\n", "run.host_width", "expected int or null", "got str"),
        ("kasmina:\n  target_module_types: ReLU\n", TARGETS, "expected list of str", "got str"),
        ("kasmina:\n  target_module_types: [ReLU, 3]\n", f"{TARGETS}[1]", "expected str", "got int"),
        ("run: 5\n", "run", "expected a mapping", "got int"),
    ],
)
def test_wrong_type_names_key_expected_and_given(text: str, field: str, expected: str, given: str) -> None:
    error = _error(text)
    assert error.violations[0].field == field
    assert expected in str(error) and given in str(error)


def test_ints_are_accepted_for_floats() -> None:
    config = parse_config("run:\n  learning_rate: 1\n  weight_decay: 0\n")
    assert config.run.learning_rate == 1.0 and isinstance(config.run.learning_rate, float)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("run:\n  epochs: 0\n", "run.epochs"),
        ("run:\n  validation_fraction: 1.5\n", "run.validation_fraction"),
        ("tolaria:\n  divergence_factor: 0.5\n", "tolaria.divergence_factor"),
        ("tolaria:\n  divergence_window: 0\n", "tolaria.divergence_window"),
        ("tolaria:\n  divergence_min_loss: -1\n", "tolaria.divergence_min_loss"),
        ("tolaria:\n  graft_rollback: 1\n", "tolaria.graft_rollback"),
        ("tolaria:\n  graft_rollback_margin: 2\n", "tolaria.graft_rollback_margin"),
        ("tolaria:\n  keep_best_state: yes please\n", "tolaria.keep_best_state"),
        ("kasmina:\n  ramp_steps: 0\n", "kasmina.ramp_steps"),
        ("tamiyo:\n  patience: 0\n", "tamiyo.patience"),
        ("assets:\n  pipelines: [turbo]\n", "assets.pipelines"),
    ],
)
def test_out_of_range_values_name_the_key(text: str, field: str) -> None:
    assert _error(text).violations[0].field == field


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    assert _error("run: [unclosed\n").violations[0].field == "config"
    assert _error("- a list\n").violations[0].field == "config"
    with pytest.raises(InvalidArgument) as info:
        load_config(tmp_path / "absent.yaml")
    assert info.value.violations[0].field == "config" and "absent.yaml" in str(info.value)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")) == EsperConfig()


def test_out_is_required_for_runs() -> None:
    with pytest.raises(InvalidArgument) as info:
        load_config().run.require_out()
    assert info.value.violations[0].field == "run.out"
    assert load_config(None, {"run.out": "~/runs/a"}).run.require_out() == Path("~/runs/a").expanduser()


def test_host_width_zero_means_default() -> None:
    assert RunConfig(host_width=0).host_width is None


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "run": {"dataset": "npz:/data/x.npz", "epochs": 12, "seed": 9, "host_width": 24, "static": True},
            "run.out": str(tmp_path / "out"),
            "kasmina.target_module_paths": ["act2"],
            "assets.template_ids": ["residual_mlp_small"],
            "tolaria.hook_budget_ms": 25.5,
        },
    )
    text = yaml.safe_dump(config_to_dict(config))
    assert load_config(_write(tmp_path, text)) == config
    assert config_from_dict(config_to_dict(config)) == config
    assert config_to_dict(config)["kasmina"]["target_module_paths"] == ["act2"]


def test_every_section_is_a_frozen_dataclass() -> None:
    config = EsperConfig()
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.__setattr__(dataclasses.fields(value)[0].name, None)
    assert isinstance(config.kasmina, KasminaConfig)


def test_a_text_run_takes_the_language_model_defaults_beneath_its_file_and_flags(tmp_path: Path) -> None:
    from esper.tolaria.config import LANGUAGE_MODEL_DEFAULTS

    text = load_config(overrides={"run.dataset": "text"})
    assert text.tamiyo.min_delta == LANGUAGE_MODEL_DEFAULTS["tamiyo.min_delta"] != EsperConfig().tamiyo.min_delta
    assert text.run.epochs == LANGUAGE_MODEL_DEFAULTS["run.epochs"]
    path = tmp_path / "lm.yaml"
    path.write_text("run:\n  dataset: text:/corpus.txt\ntamiyo:\n  min_delta: 0.01\n")
    mine = load_config(path, {"run.epochs": 7})
    assert (mine.tamiyo.min_delta, mine.run.epochs, mine.tamiyo.patience) == (0.01, 7, 1)
    assert load_config(overrides={"run.dataset": "digits"}) == EsperConfig(run=RunConfig(dataset="digits"))
    assert load_config(overrides={"run.dataset": "text"}, profile="classification").tamiyo == EsperConfig().tamiyo
    with pytest.raises(InvalidArgument) as info:
        load_config(profile="vision")
    assert info.value.violations[0].field == "profile"


def test_tamiyo_may_not_germinate_a_slot_kasmina_still_embargoes() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_config(overrides={"kasmina.embargo_epochs": 8})
    assert "tamiyo.embargo_epochs" in str(caught.value) and "kasmina.embargo_epochs (8)" in str(caught.value)
    assert load_config(overrides={"kasmina.embargo_epochs": 8, "tamiyo.embargo_epochs": 8}).tamiyo.embargo_epochs == 8
