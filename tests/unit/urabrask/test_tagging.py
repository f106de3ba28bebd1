"""Tagging policy: percentile bands among peers, fixed rules for a small population."""

from __future__ import annotations

import pytest

from esper.leyline.v1 import kernel_pb2
from esper.urabrask.config import TaggingPolicy
from esper.urabrask.tagging import assign_tags, percentile_rank, select_peers, uses_percentiles

TARGET = "cpu-x86_64"


def report(
    kernel_id: str,
    latency: float,
    memory: float = 0.5,
    *,
    drift: float = 0.0,
    passed: bool = True,
    target: str = TARGET,
    power: float = 0.0,
) -> kernel_pb2.UrabraskValidationReport:
    return kernel_pb2.UrabraskValidationReport(
        kernel_id=kernel_id,
        passed=passed,
        latency_ms_mean=latency,
        memory_mb_peak=memory,
        precision_drift_vs_fp32=drift,
        hardware_target=target,
        power_watts_avg=power,
    )


def population(size: int) -> list[kernel_pb2.UrabraskValidationReport]:
    """Peers with latency 1..size ms and memory 10..10*size MB."""
    return [report(f"k{i}", latency=float(i), memory=10.0 * i) for i in range(1, size + 1)]


POLICY = TaggingPolicy(min_population=8)


def test_percentile_rank_counts_ties_as_half() -> None:
    assert percentile_rank(0.0, [1.0, 2.0, 3.0, 4.0]) == 0.0
    assert percentile_rank(5.0, [1.0, 2.0, 3.0, 4.0]) == 100.0
    assert percentile_rank(2.0, [1.0, 2.0, 3.0, 4.0]) == pytest.approx(37.5)
    with pytest.raises(ValueError):
        percentile_rank(1.0, [])


@pytest.mark.parametrize(
    ("latency", "speed_tag"),
    [
        (0.5, "high_speed"),
        (3.5, "high_speed"),
        (5.5, "medium_speed"),
        (7.5, "low_speed"),
        (99.0, "low_speed"),
    ],
)
def test_latency_band_among_peers(latency: float, speed_tag: str) -> None:
    peers = population(10)
    tags = assign_tags(report("new", latency=latency, memory=55.0), peers, POLICY)
    speed = [tag for tag in tags if tag.endswith("_speed")]
    assert speed == [speed_tag]


@pytest.mark.parametrize(
    ("memory", "memory_tags"),
    [(5.0, ["low_memory"]), (55.0, []), (95.0, ["high_memory"])],
)
def test_memory_band_among_peers(memory: float, memory_tags: list[str]) -> None:
    tags = assign_tags(report("new", latency=5.5, memory=memory), population(10), POLICY)
    assert [tag for tag in tags if tag.endswith("_memory")] == memory_tags


def test_relative_tags_ignore_absolute_values() -> None:
    """A kernel at 50 ms is high_speed if its peers are all slower: tags are relative."""
    slow_peers = [report(f"k{i}", latency=100.0 + i, memory=1000.0 + i) for i in range(10)]
    tags = assign_tags(report("new", latency=50.0, memory=500.0), slow_peers, POLICY)
    assert "high_speed" in tags
    assert "low_memory" in tags


def test_small_population_uses_fixed_rules() -> None:
    peers = population(POLICY.min_population - 1)
    fast = report("fast", latency=POLICY.high_speed_max_latency_ms / 2, memory=POLICY.low_memory_max_mb / 2)
    slow = report("slow", latency=POLICY.low_speed_min_latency_ms * 2, memory=POLICY.high_memory_min_mb * 2)
    middle = report("mid", latency=0.5, memory=4.0)
    assert not uses_percentiles(fast, peers, POLICY)
    # Among these peers (latency >= 1 ms) "slow" would rank high_speed; the fixed rules say otherwise.
    assert assign_tags(fast, peers, POLICY) == ["high_speed", "low_memory", "numerically_stable"]
    assert assign_tags(slow, peers, POLICY) == ["low_speed", "high_memory", "numerically_stable"]
    assert assign_tags(middle, peers, POLICY) == ["medium_speed", "numerically_stable"]


def test_switches_to_percentiles_at_min_population() -> None:
    peers = population(POLICY.min_population)
    # 0.5 ms is medium_speed by the fixed rules but faster than every peer here.
    candidate = report("new", latency=0.5, memory=5.0)
    assert "medium_speed" in assign_tags(candidate, peers[:-1], POLICY)
    assert uses_percentiles(candidate, peers, POLICY)
    assert "high_speed" in assign_tags(candidate, peers, POLICY)


def test_peers_are_passed_reports_of_other_kernels_on_the_same_target() -> None:
    candidate = report("new", latency=1.0)
    candidates = [
        report("same", latency=2.0),
        report("failed", latency=2.0, passed=False),
        report("gpu", latency=2.0, target="cuda-sm90"),
        report("new", latency=2.0),  # an older report of the same kernel
    ]
    assert [peer.kernel_id for peer in select_peers(candidate, candidates)] == ["same"]


def test_other_targets_do_not_make_a_population() -> None:
    gpu_peers = [report(f"g{i}", latency=float(i), target="cuda-sm90") for i in range(20)]
    assert not uses_percentiles(report("new", latency=0.5), gpu_peers, POLICY)


def test_numerically_stable_needs_tight_drift() -> None:
    tight, loose = POLICY.stable_drift, POLICY.stable_drift * 10
    assert "numerically_stable" in assign_tags(report("a", 0.5, drift=tight), [], POLICY)
    assert "numerically_stable" not in assign_tags(report("b", 0.5, drift=loose), [], POLICY)


def test_failed_report_gets_no_tags() -> None:
    assert assign_tags(report("bad", 0.01, passed=False), population(10), POLICY) == []


def test_power_tags_only_where_power_is_measured() -> None:
    assert not any("power" in tag for tag in assign_tags(report("cpu", 5.5), population(10), POLICY))
    powered = [report(f"p{i}", latency=float(i), power=100.0 + 10 * i) for i in range(1, 11)]
    tags = assign_tags(report("hot", latency=5.5, power=500.0), powered, POLICY)
    assert "high_power" in tags
    assert "low_power" in assign_tags(report("cool", 0.5, power=10.0), [], POLICY)


def test_policy_rejects_inverted_bands() -> None:
    with pytest.raises(ValueError):
        TaggingPolicy(fast_percentile=70.0, slow_percentile=30.0)
    with pytest.raises(ValueError):
        TaggingPolicy(min_population=0)
