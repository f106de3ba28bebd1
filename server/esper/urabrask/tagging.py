"""Empirical tags: what a kernel does compared with its peers (docs/assets.md, "Tags").

Pure functions over reports, so the policy is testable without a sandbox. Peers are
the passed reports of other kernels on the same hardware target. With enough of them
a kernel is tagged by the percentile it falls at; with fewer, fixed thresholds give
conservative tags so that the first kernels of a target are tagged at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from esper.leyline.v1 import kernel_pb2
from esper.urabrask.config import TaggingPolicy

HIGH_SPEED = "high_speed"
MEDIUM_SPEED = "medium_speed"
LOW_SPEED = "low_speed"
LOW_MEMORY = "low_memory"
HIGH_MEMORY = "high_memory"
LOW_POWER = "low_power"
HIGH_POWER = "high_power"
NUMERICALLY_STABLE = "numerically_stable"

Report = kernel_pb2.UrabraskValidationReport

# Percentile band (-1 low, 0 middle, 1 high) to tag; lower latency is faster.
_SPEED = {-1: HIGH_SPEED, 0: MEDIUM_SPEED, 1: LOW_SPEED}
_MEMORY = {-1: LOW_MEMORY, 1: HIGH_MEMORY}
_POWER = {-1: LOW_POWER, 1: HIGH_POWER}


def select_peers(report: Report, candidates: Iterable[Report]) -> list[Report]:
    """Passed reports of other kernels on `report`'s hardware target."""
    target, kernel_id = report.hardware_target, report.kernel_id
    return [
        peer for peer in candidates if peer.passed and peer.hardware_target == target and peer.kernel_id != kernel_id
    ]


def percentile_rank(value: float, population: Sequence[float]) -> float:
    """Percent of `population` below `value`, ties counting half: 0 below all, 100 above all."""
    if not population:
        raise ValueError("percentile_rank needs a non-empty population")
    below = sum(1 for other in population if other < value)
    equal = sum(1 for other in population if other == value)
    return 100.0 * (below + 0.5 * equal) / len(population)


def assign_tags(report: Report, candidates: Iterable[Report], policy: TaggingPolicy) -> list[str]:
    """Tags for a passed `report` among `candidates` (a failed kernel gets none)."""
    if not report.passed:
        return []
    peers = select_peers(report, candidates)
    tags = _relative_tags(report, peers, policy) if len(peers) >= policy.min_population else _fixed_tags(report, policy)
    if report.precision_drift_vs_fp32 <= policy.stable_drift:
        tags.append(NUMERICALLY_STABLE)
    return tags


def uses_percentiles(report: Report, candidates: Iterable[Report], policy: TaggingPolicy) -> bool:
    """True when `report` has enough peers to be tagged by percentile."""
    return len(select_peers(report, candidates)) >= policy.min_population


def _relative_tags(report: Report, peers: Sequence[Report], policy: TaggingPolicy) -> list[str]:
    latency = percentile_rank(report.latency_ms_mean, [peer.latency_ms_mean for peer in peers])
    memory = percentile_rank(report.memory_mb_peak, [peer.memory_mb_peak for peer in peers])
    tags = [_SPEED[_band(latency, policy.fast_percentile, policy.slow_percentile)]]
    memory_tag = _MEMORY.get(_band(memory, policy.low_memory_percentile, policy.high_memory_percentile))
    if memory_tag is not None:
        tags.append(memory_tag)
    powered = [peer.power_watts_avg for peer in peers if peer.power_watts_avg > 0]
    # A target without a power counter reports 0: no power tags there.
    if report.power_watts_avg > 0 and len(powered) >= policy.min_population:
        power = percentile_rank(report.power_watts_avg, powered)
        power_tag = _POWER.get(_band(power, policy.fast_percentile, policy.slow_percentile))
        if power_tag is not None:
            tags.append(power_tag)
    elif report.power_watts_avg > 0:
        tags.extend(_fixed_power(report, policy))
    return tags


def _fixed_tags(report: Report, policy: TaggingPolicy) -> list[str]:
    latency = report.latency_ms_mean
    if latency <= policy.high_speed_max_latency_ms:
        tags = [HIGH_SPEED]
    elif latency >= policy.low_speed_min_latency_ms:
        tags = [LOW_SPEED]
    else:
        tags = [MEDIUM_SPEED]
    if report.memory_mb_peak <= policy.low_memory_max_mb:
        tags.append(LOW_MEMORY)
    elif report.memory_mb_peak >= policy.high_memory_min_mb:
        tags.append(HIGH_MEMORY)
    if report.power_watts_avg > 0:
        tags.extend(_fixed_power(report, policy))
    return tags


def _fixed_power(report: Report, policy: TaggingPolicy) -> list[str]:
    if report.power_watts_avg <= policy.low_power_max_watts:
        return [LOW_POWER]
    if report.power_watts_avg >= policy.high_power_min_watts:
        return [HIGH_POWER]
    return []


def _band(percentile: float, low: float, high: float) -> int:
    """-1 at or below the `low` percentile, 1 at or above `high`, 0 between."""
    if percentile <= low:
        return -1
    if percentile >= high:
        return 1
    return 0
