"""The PromQL operations behind the rules: increase with resets and extrapolation, histogram quantiles."""

from __future__ import annotations

import math

import pytest

from esper.nissa.alerts.promql import (
    Matcher,
    Sample,
    aggregate,
    bucket_quantile,
    compare,
    extrapolated_increase,
    histogram_quantile,
    select,
)
from esper.nissa.alerts.series import SampleHistory, SeriesKey, labels_of


def test_increase_needs_two_samples() -> None:
    assert extrapolated_increase([], 0, 300) is None
    assert extrapolated_increase([(100, 4.0)], 0, 300) is None


def test_increase_over_a_window_the_samples_span_is_their_difference() -> None:
    samples = [(t * 60.0, 10.0 + t) for t in range(6)]
    assert extrapolated_increase(samples, 0, 300) == 5.0


def test_a_counter_reset_adds_back_the_value_before_the_drop() -> None:
    # 5 -> 7, restart to 0, -> 3: the counter really rose by 2 + 3.
    samples = [(0.0, 5.0), (60.0, 7.0), (120.0, 0.0), (180.0, 3.0)]
    assert extrapolated_increase(samples, 0, 180) == 5.0


def test_a_series_starting_inside_the_window_extrapolates_half_a_gap_at_most() -> None:
    # Samples over the last 2 of 5 minutes: extended by 30 s before the first, none after the last.
    samples = [(180.0, 10.0), (240.0, 11.0), (300.0, 12.0)]
    assert extrapolated_increase(samples, 0, 300) == pytest.approx(2.0 * 150 / 120)


def test_extrapolation_never_goes_below_a_counter_value_of_zero() -> None:
    samples = [(180.0, 1.0), (240.0, 3.0), (300.0, 5.0)]
    # The counter would have been 0 at 150 s: extend by 30 s (half a gap) only, not to 0 s.
    assert extrapolated_increase(samples, 0, 300) == pytest.approx(4.0 * 150 / 120)
    samples = [(180.0, 0.5), (240.0, 10.5), (300.0, 20.5)]
    # Zero is reached 3 s before the first sample: extend by those 3 s.
    assert extrapolated_increase(samples, 0, 300) == pytest.approx(20.0 * 123 / 120)


def test_bucket_quantile_interpolates_inside_the_bucket_holding_the_rank() -> None:
    buckets = [(0.01, 20.0), (0.025, 100.0), (math.inf, 100.0)]
    assert bucket_quantile(0.95, buckets) == pytest.approx(0.01 + 0.015 * 75 / 80)
    assert bucket_quantile(0.1, buckets) == pytest.approx(0.005)


def test_bucket_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert bucket_quantile(0.99, [(0.01, 10.0), (0.025, 20.0), (math.inf, 100.0)]) == 0.025


def test_bucket_quantile_is_nan_without_observations_or_without_an_inf_bucket() -> None:
    assert math.isnan(bucket_quantile(0.95, [(0.01, 0.0), (math.inf, 0.0)]))
    assert math.isnan(bucket_quantile(0.95, [(0.01, 3.0), (0.02, 5.0)]))
    assert math.isnan(bucket_quantile(0.0, [(0.01, 0.0), (math.inf, 4.0)]))


def test_histogram_quantile_groups_by_the_labels_other_than_le() -> None:
    counts = {"a": (10.0, 10.0, 10.0), "b": (0.0, 10.0, 10.0)}
    vector = [
        Sample(labels_of({"job": job, "le": le}), count)
        for job, job_counts in counts.items()
        for le, count in zip(("0.01", "0.1", "+Inf"), job_counts, strict=True)
    ]
    found = {s.label("job"): s.value for s in histogram_quantile(0.5, vector)}
    assert found == pytest.approx({"a": 0.005, "b": 0.055})


def test_select_skips_stale_and_old_samples_and_applies_matchers() -> None:
    history = SampleHistory(retention_seconds=900)
    fresh = SeriesKey("up", labels_of({"job": "urza"}))
    stale = SeriesKey("up", labels_of({"job": "karn"}))
    old = SeriesKey("up", labels_of({"job": "simic"}))
    history.append(fresh, 100.0, 1.0)
    history.append(stale, 100.0, 1.0)
    history.mark_stale([stale], 110.0)
    history.append(old, 100.0 - 400, 1.0)
    assert [s.label("job") for s in select(history, "up", [], 120.0)] == ["urza"]
    assert select(history, "up", [Matcher("job", "urza", equal=False)], 120.0) == []


def test_aggregations_keep_only_the_by_labels_and_compare_filters() -> None:
    vector = [
        Sample(labels_of({"job": "t", "pipeline": "aot", "instance": "i"}), 3.0),
        Sample(labels_of({"job": "t", "pipeline": "eager", "instance": "i"}), 4.0),
    ]
    assert aggregate(vector, "sum", ("job",)) == [Sample(labels_of({"job": "t"}), 7.0)]
    assert aggregate(vector, "max", ("job",)) == [Sample(labels_of({"job": "t"}), 4.0)]
    assert compare(vector, ">", 3.0) == [vector[1]]
