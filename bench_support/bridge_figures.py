"""The pure arithmetic of `scripts/bench --bridge`: percentiles, staleness, the OTA messages' extra wait.

Each bridged sensor counts: its k-th change sets the temperature `temperature(k)`, unique over a run, so a
value the cloud received says which change it carried (`change_of`), and "the cloud has that value or a later
one" is "the highest change received so far is at least k".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import math
from typing import Any

# How `scripts/bench --bridge` (scripts/py/bench_bridge.py) tells its Home Assistant side
# (tests/integration/bridge_bench.py, a child pytest) what to run, and where the measurements go back (JSON).
OUT_ENV = "TENCENT_IOT_BENCH_BRIDGE_OUT"
N_ENV = "TENCENT_IOT_BENCH_BRIDGE_N"
OTA_ENV = "TENCENT_IOT_BENCH_BRIDGE_OTA"
WINDOW_ENV = "TENCENT_IOT_BENCH_BRIDGE_WINDOW_S"
CONTROLS_ENV = "TENCENT_IOT_BENCH_BRIDGE_CONTROLS"

# The standard sensor template's `current_temp`: a float from -40 to 125 (tencent_iot_emulator's templates),
# reported to one decimal: 1,650 distinct values, more than any run's changes per sensor.
TEMPERATURE_MIN = -40.0
TEMPERATURE_STEP = 0.1
MAX_CHANGES = 1650

type Figure = float | int | str


def temperature(change: int) -> float:
    """The value of a sensor's `change`-th state (0 is its first)."""
    if not 0 <= change <= MAX_CHANGES:
        raise ValueError(f"change {change} is outside 0..{MAX_CHANGES}")
    return round(TEMPERATURE_MIN + change * TEMPERATURE_STEP, 1)


def change_of(value: object) -> int | None:
    """Which change a reported `current_temp` carries (None for anything `temperature` never gives)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    change = round((value - TEMPERATURE_MIN) / TEMPERATURE_STEP)
    return change if 0 <= change <= MAX_CHANGES and temperature(change) == value else None


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile (`q` in 0..100): the smallest value with at least q % of them at or
    below it (a p99 of 100 values is the 99th, never an interpolation below a measured one)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], not {q}")
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class Staleness:
    """The staleness of each change of a window, and the changes the cloud never got (nor a later one)."""

    seconds: tuple[float, ...]
    missing: int


def staleness(changes: Sequence[tuple[int, float]], arrivals: Iterable[tuple[float, int]]) -> Staleness:
    """For each `(change, time)` set in Home Assistant, the time until the cloud first had that change or a
    later one, from `arrivals`, the `(time, change)` of each report the cloud accepted (any order)."""
    ordered = sorted(arrivals)
    seconds: list[float] = []
    missing = 0
    index, highest, at = 0, -1, 0.0
    for change, changed_at in sorted(changes):
        while highest < change and index < len(ordered):
            at, received = ordered[index]
            highest = max(highest, received)
            index += 1
        if highest >= change:
            # A report that arrived before the change (a clock step) cannot be late by less than nothing.
            seconds.append(max(0.0, at - changed_at))
        else:
            missing += 1
    return Staleness(tuple(seconds), missing)


def extra_waits(
    without: Mapping[str, Sequence[float]], with_bridge: Mapping[str, Sequence[float]]
) -> list[float]:
    """Shown beside the figure, not the figure: the two pushes do not send the same messages in the same order
    (which jobs join the download from byte 0 depends on timing), so a pair can differ by seconds either way
    without the bridge playing any part. How much longer each OTA message waited for the uplink budget with the bridge than the same message
    (same device, same marker, same occurrence) of the run without it; messages of one run only are left out."""
    extra: list[float] = []
    for key, waits in with_bridge.items():
        baseline = without.get(key, ())
        extra.extend(w - b for w, b in zip(waits, baseline, strict=False))
    return extra


def figures_of(raw: dict[str, Any]) -> dict[str, Figure]:
    """The JSON line's figures from what the Home Assistant side measured ("n/a" for what it did not)."""

    def pick(*path: str) -> Figure:
        value: Any = raw
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"

    return {
        "bridge_staleness_p99_s": pick("staleness", "p99_s"),
        "bridge_staleness_p99_s_during_ota": pick("staleness_during_ota", "p99_s"),
        "ota_marker_delay_max_s": pick("ota", "max_wait_delay_s"),
        "control_latency_p95_ms": pick("control", "p95_ms"),
        "rate_violations": pick("rate_violations"),
        "max_loop_stall_ms": pick("max_loop_stall_ms"),
        "rss_growth_mib": pick("rss_growth_mib"),
        "bridge_staleness_p50_s": pick("staleness", "p50_s"),
        "bridge_staleness_max_s": pick("staleness", "max_s"),
        "bridge_changes_missing": pick("staleness", "missing"),
        "ota_push_s_without_bridge": pick("ota_push_s_without_bridge"),
        "ota_push_s_with_bridge": pick("ota_push_s_with_bridge"),
        "ota_max_wait_s_without_bridge": pick("ota", "max_wait_s_without"),
        "ota_max_wait_s_with_bridge": pick("ota", "max_wait_s_with"),
        "ota_p95_wait_s_without_bridge": pick("ota", "p95_wait_s_without"),
        "ota_p95_wait_s_with_bridge": pick("ota", "p95_wait_s_with"),
        "ota_paired_extra_wait_max_s": pick("ota", "paired_extra_max_s"),
        "control_to_ha_state_p95_ms": pick("control", "to_ha_state_p95_ms"),
        "frozen_heap_full_gc_ms": pick("frozen_heap_full_gc_ms"),
        "max_loop_stall_cpu_ms": pick("max_loop_stall_cpu_ms"),
    }
