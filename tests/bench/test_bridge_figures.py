"""The arithmetic of `scripts/bench --bridge` (bench_support/bridge_figures.py), on numbers worked by hand."""

from __future__ import annotations

import pytest

from bench_support.bridge_figures import (
    MAX_CHANGES,
    change_of,
    extra_waits,
    figures_of,
    percentile,
    staleness,
    temperature,
)


def test_every_change_has_its_own_temperature_and_back() -> None:
    """A reported value names its change; values the bench never sets name none."""
    values = [temperature(k) for k in range(MAX_CHANGES + 1)]
    assert len(set(values)) == MAX_CHANGES + 1
    assert values[0] == -40.0
    assert values[-1] == 125.0
    assert temperature(603) == 20.3
    assert all(change_of(temperature(k)) == k for k in range(MAX_CHANGES + 1))
    assert change_of(20.35) is None
    assert change_of(125.1) is None
    assert change_of(True) is None
    assert change_of("20.3") is None
    with pytest.raises(ValueError, match="outside"):
        temperature(MAX_CHANGES + 1)


def test_percentile_is_nearest_rank() -> None:
    """Never an interpolation below a measured value: p99 of 1..100 is 99, of 1..10 it is 10."""
    assert percentile(range(1, 101), 99) == 99
    assert percentile(range(1, 101), 50) == 50
    assert percentile(range(10, 0, -1), 99) == 10
    assert percentile([3.0], 95) == 3.0
    assert percentile(range(1, 21), 95) == 19
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 0)


def test_staleness_counts_until_that_change_or_a_later_one_arrived() -> None:
    """Change 2 was never reported itself, but change 3 arrived: it was current from then on. A change
    whose value (or a later one) never arrived is missing, not a number."""
    changes = [(1, 10.0), (2, 11.0), (3, 12.0), (4, 13.0)]
    arrivals = [
        (19.5, 3),
        (10.5, 1),
        (25.0, 2),
    ]  # any order; a late straggler of an older value changes nothing
    measured = staleness(changes, arrivals)
    assert measured.seconds == (0.5, 8.5, 7.5)
    assert measured.missing == 1


def test_staleness_of_a_change_already_superseded_in_flight() -> None:
    """Two changes covered by one arrival each get their own wait; an arrival stamped before the change (a clock
    step between two processes) counts as no wait, never a negative one."""
    measured = staleness([(5, 100.0), (6, 101.0)], [(100.9, 6)])
    assert measured.seconds == pytest.approx((0.9, 0.0))
    assert measured.missing == 0


def test_extra_waits_pair_the_same_message_of_both_runs() -> None:
    """Same key, same occurrence: the difference; a message of one run only is left out."""
    without = {"a #0": [0.5], "b #0": [2.0], "gone #0": [9.0]}
    with_bridge = {"a #0": [0.75], "b #0": [1.5], "new #0": [4.0]}
    assert sorted(extra_waits(without, with_bridge)) == [-0.5, 0.25]


def test_figures_of_reads_what_the_home_assistant_side_wrote() -> None:
    """Nested figures are picked out; one the run did not produce (or not a number) is "n/a"."""
    raw = {
        "staleness": {"p99_s": 10.9, "p50_s": 5.2, "max_s": 11.4, "missing": 0},
        "staleness_during_ota": {"changes": 0, "missing": 0},
        "ota": {"max_wait_delay_s": 0.04, "paired_extra_max_s": 2.5},
        "control": {"p95_ms": 61.5},
        "rate_violations": 0,
        "max_loop_stall_ms": True,
        "rss_growth_mib": 12.5,
    }
    figures = figures_of(raw)
    assert figures["bridge_staleness_p99_s"] == 10.9
    assert figures["bridge_staleness_p99_s_during_ota"] == "n/a"
    assert figures["ota_marker_delay_max_s"] == 0.04
    assert figures["ota_paired_extra_wait_max_s"] == 2.5
    assert figures["control_latency_p95_ms"] == 61.5
    assert figures["rate_violations"] == 0
    assert figures["bridge_changes_missing"] == 0
    assert figures["max_loop_stall_ms"] == "n/a"
    assert figures["ota_push_s_without_bridge"] == "n/a"
