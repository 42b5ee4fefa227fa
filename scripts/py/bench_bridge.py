"""The bridge benchmark of issue 20: `scripts/bench --bridge` (a benchmark run on demand, not a test).

Home Assistant (in-process, from pytest-homeassistant-custom-component, in a child pytest running
`tests/integration/bridge_bench.py`, whose docstring tells the steps) bridges 300 temperature sensors that
change every second and one switch, beside 100 sub-devices receiving firmware, through one gateway connection
to the emulator started with `--strict-limits` (30 uplink messages a second; the broker drops and counts the
excess). The emulator records when each report arrived. Figures:

- `bridge_staleness_p99_s`: the 99th percentile, over every change of a 60 s window, of the time from the
  change in Home Assistant until the cloud had that value or a later one (the bound is N / budget: 10 s for
  300 at 30 messages a second; the limiter's margin makes the budget 27.8, so 10.8 s);
- `bridge_staleness_p99_s_during_ota`: the same for the changes made while a push to the 100 runs;
- `ota_marker_delay_max_s`: how much longer an OTA marker or outcome waited for the uplink budget during that
  push than the same message (device, marker, occurrence) of the same push without the bridge's traffic;
- `control_latency_p95_ms`: a control from the console to the switch until the cloud has the switch's new
  value reported (the cloud's clock at both ends), when idle;
- `rate_violations` (the strict broker's drops over the whole run), `max_loop_stall_ms` and `rss_growth_mib`
  of Home Assistant's process over the measured steps, its heap frozen first (`bench_support.monitor`).

Every figure is printed beside its target with PASS or MISS and the load average; the run ends with one JSON
line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
import sys

from bench_support.bridge_figures import CONTROLS_ENV, N_ENV, OTA_ENV, OUT_ENV, WINDOW_ENV, Figure, figures_of
from bench_support.monitor import STALL_KEPT_MS

from .bench import _machine, run_benchmark
from .bench_scale import child_pytest

BRIDGE_BENCH = "tests/integration/bridge_bench.py"
TIMEOUT_S = 1800.0

# The targets of issue 20 (stall and RSS as the other benchmarks).
MAX_STALENESS_P99_S = 12.0
MAX_OTA_MARKER_DELAY_S = 1.0
MAX_CONTROL_P95_MS = 500.0
MAX_STALL_MS = 50.0
MAX_RSS_GROWTH_MIB = 64.0

TARGETS: list[tuple[str, str, Callable[[float], bool]]] = [
    ("bridge_staleness_p99_s", f"<= {MAX_STALENESS_P99_S:g}", lambda v: v <= MAX_STALENESS_P99_S),
    ("ota_marker_delay_max_s", f"<= {MAX_OTA_MARKER_DELAY_S:g}", lambda v: v <= MAX_OTA_MARKER_DELAY_S),
    ("control_latency_p95_ms", f"<= {MAX_CONTROL_P95_MS:g}", lambda v: v <= MAX_CONTROL_P95_MS),
    ("rate_violations", "= 0", lambda v: v == 0),
    ("bridge_changes_missing", "= 0", lambda v: v == 0),
    ("max_loop_stall_ms", f"<= {MAX_STALL_MS:g}", lambda v: v <= MAX_STALL_MS),
    ("rss_growth_mib", f"<= {MAX_RSS_GROWTH_MIB:g}", lambda v: v <= MAX_RSS_GROWTH_MIB),
]


def report(figures: dict[str, Figure]) -> None:
    """Each figure beside its target (PASS, MISS or n/a), then those without one."""
    print("\n== Figures against the targets ==")
    targeted = {name for name, _, _ in TARGETS}
    for name, target, ok in TARGETS:
        value = figures[name]
        verdict = "n/a" if isinstance(value, str) else ("PASS" if ok(float(value)) else "MISS")
        print(f"  {name:<36} {value!s:<10} target {target:<8} {verdict}")
    for name, value in figures.items():
        if name not in targeted:
            print(f"  {name:<36} {value!s:<10} (no target)")


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Figure]:
    """The Home Assistant side in a child pytest, then the report."""
    print(
        f"== Home Assistant bridging {args.sensors} sensors beside {args.ota} sub-devices, strict emulator "
        f"({_machine()}) ==",
        flush=True,
    )
    env = {
        N_ENV: str(args.sensors),
        OTA_ENV: str(args.ota),
        WINDOW_ENV: f"{args.window_s:g}",
        CONTROLS_ENV: str(args.controls),
    }
    raw = await child_pytest(BRIDGE_BENCH, env, OUT_ENV, work / "bridge", TIMEOUT_S)
    print(f"  OTA messages' waits for the budget: {raw.get('ota')}", flush=True)
    print(f"  loop stalls of {STALL_KEPT_MS:g} ms and more: {raw.get('stalls')}", flush=True)
    figures = figures_of(raw)
    report(figures)
    print(f"  ({_machine()} at the end)")
    return figures


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench --bridge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=300, help="bridged sensors changing every second")
    parser.add_argument("--ota", type=int, default=100, help="sub-devices the firmware is pushed to")
    parser.add_argument("--window-s", type=float, default=60.0, help="the staleness window, in seconds")
    parser.add_argument("--controls", type=int, default=30, help="controls timed when idle")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary files go")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the figures and the JSON line."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    return run_benchmark(args, "tencent-iot-bench-bridge-", bench)


if __name__ == "__main__":
    sys.exit(main())
