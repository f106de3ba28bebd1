"""The order a run's blueprints compile in: what Tamiyo would take first, every site in turn."""

from __future__ import annotations

from esper.leyline.v1 import blueprint_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.germination import WantedBlueprint, compile_priority

WIDTH, DEPTH = blueprint_pb2.GROWTH_KIND_WIDTH, blueprint_pb2.GROWTH_KIND_DEPTH


def _wanted(kind: int, site: int, *sizes: int) -> list[WantedBlueprint]:
    return [WantedBlueprint(f"s{site}-{size}", kind, size, site) for size in sizes]


def test_fitting_widening_first_largest_first_sites_in_turn_then_depth_then_later_sizes() -> None:
    blueprints = [
        *_wanted(WIDTH, 2, 37, 74, 148, 296),
        *_wanted(WIDTH, 3, 68, 136, 272),
        *_wanted(DEPTH, 0, 3, 24, 663),
        *_wanted(DEPTH, 1, 3, 24, 663),
    ]
    # A 244-parameter model: the growth step (1.0 x model) caps a width kernel at 244.
    order = compile_priority(TamiyoConfig(growth_step_fraction=1.0), blueprints, model_parameters=244)
    assert order == [
        "s2-148", "s3-136", "s2-74", "s3-68", "s2-37",
        "s0-663", "s1-663", "s0-24", "s1-24", "s0-3", "s1-3",
        "s3-272", "s2-296",
    ]  # fmt: skip


def test_without_width_sites_depth_kernels_come_by_capacity_within_the_budget() -> None:
    blueprints = _wanted(DEPTH, 0, 16, 544, 2128, 1072)
    config = TamiyoConfig(max_seed_parameter_fraction=2.0)
    assert compile_priority(config, blueprints, model_parameters=600) == ["s0-1072", "s0-544", "s0-16", "s0-2128"]
