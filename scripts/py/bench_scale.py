"""The scale benchmark of issue 10: `scripts/bench --scale` (a benchmark run on demand, not a test).

One emulator (its own process, so it shares neither this event loop nor its CPU accounting) and, for each
scenario, a fresh `GatewayEngine` with N sub-devices of a product of their own, all bound to a gateway of their
own. A scenario times:

- start: `engine.start` until the console shows every sub-device online with its version reported;
- push: a task in mode `all` with a 4 MiB image until the console shows every device's task entry terminal
  (`done`, `fail` or `timeout`), with `auto_install` on for all of them;
- over start and push: the event loop's longest lateness (a 5 ms sleeper; the heap from before the run is
  frozen, see `bench_support.monitor.Monitor`, and its full collection is printed as `frozen_heap_full_gc_ms`), this
  process's RSS growth (peak over the RSS before the engine existed), and how many bodies of the image the
  emulator served;
- the uplink messages of the connection during the push and the rate violations from start to the end of the
  push (the emulator's `uplink_messages` and `rate_violations` counters when its stats have them; else uplinks
  counted from its per-device message logs, with violations not measurable).

Scenarios: N = 100 (five runs, the median taken) and 1000 with a no-op flasher (the engine's own cost),
N = 1000 with the file flasher, and N = 1000 with the uplink budget on when the engine has one (see `budget_options`). Then Home Assistant sets up
an entry with 1,000 sub-devices in-process (pytest-homeassistant-custom-component's `hass`, in a child pytest
running `tests/integration/scale_setup_bench.py`), timed from the entry being added until every update entity
is available. Every figure is printed beside its target with PASS or MISS and the load average; the run ends
with one JSON line (figures that cannot be measured on this build are "n/a").
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import statistics
import sys
import time
from typing import Any

import aiohttp

from bench_support.monitor import MIB, Monitor
from custom_components.tencent_iot_gateway.engine.engine_config import (
    ConnectionSettings,
    EngineDevices,
    EngineStorage,
    GatewayLogin,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import GatewayEngine, SubDevice
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.ota.download import Downloader
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache
from custom_components.tencent_iot_gateway.engine.ota.flashers import FileFlasher, FileFlasherConfig
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import Flasher
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.process import EmulatorProcess, Endpoints

from .bench import (
    TOP,
    BenchError,
    _ignore_event,
    _in_executor,
    _machine,
    run_benchmark,
    trusting_session,
    upload_random,
)

IMAGE_SIZE = 4 * MIB
INSTALLED = "0.1"
TARGET = "1.0"
GATEWAY_PRODUCT = "SCALEGW001"
POLL_S = 0.1
START_TIMEOUT_S = 120.0
PUSH_TIMEOUT_S = 900.0
HA_TIMEOUT_S = 900.0
HA_BENCH = "tests/integration/scale_setup_bench.py"
HA_OUT_ENV = "TENCENT_IOT_BENCH_HA_OUT"
HA_N_ENV = "TENCENT_IOT_BENCH_HA_N"
TERMINAL = frozenset({"done", "fail", "timeout"})
SMALL_REPEATS = 5
UPLINK_BUDGET_PER_S = 30.0
# The engine keyword of the uplink budget (msg/s; None: off). The engine's default is on, so the budget-off
# scenarios pass None: they measure the engine's own cost.
# `serve` options that make the emulator enforce the per-connection limit the way a strict broker would: a
# publish over the rate is dropped and recorded as a `limit` violation (GET /api/limits counts them).
LIMITED_EMULATOR_ARGS: tuple[str, ...] = ("--strict-limits",)
# Both emulators refuse more than one topic per SUBSCRIBE (their default), and neither limits subscriptions
# to 100 per connection (older IoT Hub): one gateway then hears pushes for ~98 sub-devices (see the README's
# Performance section); the bench measures the rate budget with 1,000.
BENCH_LIMITS = {"max_subscriptions": 0}

# The targets of issue 10.
MAX_PUSH_S_1000_NOOP = 5.0
MAX_LINEARITY = 1.3
MAX_STALL_MS = 50.0
MAX_RSS_GROWTH_MIB = 64.0
MAX_HA_SETUP_S = 15.0
MAX_ONLINE_S = 5.0
MIN_LIMITED_EFFICIENCY = 0.9

Figure = float | int | str


class NoopFlasher:
    """Flashes nothing, instantly: what remains of a push is the engine's own cost."""

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        """Report the target version as installed."""
        return firmware.version


@dataclass(frozen=True, slots=True)
class Scenario:
    """N sub-devices of one product of their own, bound to one gateway of their own."""

    n: int
    flavor: str  # noop, file or limited
    repeat: int = 0  # the N = 100 scenario runs several times (`SMALL_REPEATS`)

    @property
    def name(self) -> str:
        """The scenario, whatever the repeat (`--only` and the report use it)."""
        return f"{self.n}_{self.flavor}"

    @property
    def tag(self) -> str:
        """One run of the scenario."""
        return self.name + (f"#{self.repeat}" if self.repeat else "")

    @property
    def product_id(self) -> str:
        """At most 10 letters or digits."""
        return f"SC{self.n}{self.flavor[:4].upper()}" + (str(self.repeat) if self.repeat else "")

    @property
    def gateway(self) -> DeviceId:
        """The scenario's gateway."""
        return DeviceId(GATEWAY_PRODUCT, f"gw{self.n}{self.flavor}{self.repeat or ''}")

    def subs(self) -> list[DeviceId]:
        """The sub-devices, in registration order."""
        return [DeviceId(self.product_id, f"s{i:04d}") for i in range(self.n)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one scenario measured."""

    scenario: Scenario
    online_s: float
    push_s: float
    done: int
    max_stall_ms: float
    baseline_gc_ms: float
    rss_growth_mib: float
    body_downloads: float
    uplinks: int
    violations: int | None
    load: float
    protocol_violations: int = 0  # the emulator's protocol violations (a cadence out of order among them)

    def describe(self) -> str:
        """One line for the report."""
        violations = "n/a" if self.violations is None else str(self.violations)
        return (
            f"{self.scenario.tag:<13} online {self.online_s:6.2f} s  push {self.push_s:7.2f} s  "
            f"done {self.done}/{self.scenario.n}  stall {self.max_stall_ms:6.1f} ms "
            f"(frozen heap's full GC {self.baseline_gc_ms:.0f} ms)  "
            f"RSS +{self.rss_growth_mib:6.1f} MiB  bodies {self.body_downloads:g}  uplinks {self.uplinks} "
            f"({self.uplinks / self.scenario.n:.1f}/device)  violations {violations}  "
            f"protocol {self.protocol_violations}  load {self.load:.2f}"
        )


def budget_options(flavor: str) -> dict[str, Any] | None:
    """Extra engine keywords for a flavor: the limited one runs with the connection's uplink budget on."""
    return {
        "connection": ConnectionSettings(uplink_rate=UPLINK_BUDGET_PER_S if flavor == "limited" else None)
    }


async def register(console: ConsoleClient, scenario: Scenario) -> str:
    """The gateway and its sub-devices, bound in batches; returns the gateway's secret."""
    gateway = await console.add_device(scenario.gateway.product_id, scenario.gateway.device_name)
    subs = scenario.subs()
    await console.add_devices([(d.product_id, d.device_name) for d in subs])
    await console.bind_many(scenario.gateway.key, [d.key for d in subs])
    return gateway.device_secret


async def _until(probe: Callable[[], Any], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def _emulator_stats(console: ConsoleClient) -> dict[str, Any]:
    async with console.session.get(console.base_url + "/api/stats") as response:
        return dict(await response.json())


async def _limit_violations(console: ConsoleClient) -> int:
    """How many publishes (and logins) the broker refused for breaking a limit so far."""
    async with console.session.get(console.base_url + "/api/limits") as response:
        return int((await response.json()).get("violations", {}).get("limit", 0))


async def _protocol_violations(console: ConsoleClient) -> int:
    """Protocol violations the emulator listed so far: a report in the wrong shape or a cadence out of order
    (spec §3a: "0", "100", `burning`, then the outcome, never dropped or reordered)."""
    return sum(1 for v in await console.violations() if v.raw.get("kind") == "protocol")


async def _served_bytes(console: ConsoleClient, scenario: Scenario) -> int:
    entry = (await _emulator_stats(console)).get("firmware", {}).get(f"{scenario.product_id}/{TARGET}", {})
    return int(entry.get("bytes", 0))


async def _logged_uplinks(console: ConsoleClient, scenario: Scenario, since: float) -> int:
    """Messages the connection sent from `since` on, from the emulator's per-device logs (each is capped)."""
    count = 0
    for key in [scenario.gateway.key, *(d.key for d in scenario.subs())]:
        records = await console.messages(key)
        count += sum(1 for r in records if r.direction == "in" and r.time >= since)
    return count


async def run_scenario(
    endpoints: Endpoints, console: ConsoleClient, scenario: Scenario, options: dict[str, Any], work: Path
) -> Outcome:
    """Register, start, push, and measure one scenario."""
    print(f"\n== {scenario.tag}: {scenario.n} sub-devices, {scenario.flavor} ==", flush=True)
    secret = await register(console, scenario)
    await upload_random(console, scenario.product_id, TARGET, IMAGE_SIZE)
    state = work / scenario.tag
    flashed = state / "flashed"
    flasher: Flasher = (
        FileFlasher(FileFlasherConfig(str(flashed))) if scenario.flavor == "file" else NoopFlasher()
    )
    async with trusting_session(endpoints.ca_file) as session:
        cache = FirmwareCache(state / "cache", keep_idle=True)  # as the integration's
        async with Monitor() as monitor:
            endpoint = BrokerEndpoint(
                "127.0.0.1",
                endpoints.mqtts_port,
                tls=True,
                ca_pem=await _in_executor(endpoints.ca_file.read_text),
            )
            engine = GatewayEngine(
                GatewayLogin(endpoint, scenario.gateway, secret),
                storage=EngineStorage(
                    store=JsonFileStore(state / "ota.json"),
                    downloader=Downloader(session, cache, JsonFileStore(state / "downloads.json")),
                    cache=cache,
                ),
                devices=EngineDevices(flasher_for=lambda _device: flasher, auto_install=lambda _device: True),
                on_event=_ignore_event,
                **options,
            )
            # Violations count from start to the end of the push, uplinks over the push only.
            stats_at_start = await _emulator_stats(console)
            violations_at_start = await _limit_violations(console)
            protocol_at_start = await _protocol_violations(console)
            started = time.perf_counter()
            await engine.start([SubDevice(d, INSTALLED) for d in scenario.subs()])
            try:
                online_s = await _wait_online(console, scenario, started)
                stats_at_push = await _emulator_stats(console)
                pushed_at = time.time()
                started = time.perf_counter()
                task_id = await console.create_task(
                    scenario.product_id, TARGET, "all", from_versions=[INSTALLED]
                )
                done = await _wait_pushed(console, scenario, task_id)
                push_s = time.perf_counter() - started
                stats = await _emulator_stats(console)
                violations_at_end = await _limit_violations(console)
                protocol = await _protocol_violations(console) - protocol_at_start
            finally:
                await engine.stop()
    load = os.getloadavg()[0]
    served = await _served_bytes(console, scenario)
    if "uplink_messages" in stats:
        uplinks = int(stats["uplink_messages"]) - int(stats_at_push.get("uplink_messages", 0))
        violations: int | None = int(stats.get("rate_violations", 0)) - int(
            stats_at_start.get("rate_violations", 0)
        )
    else:
        uplinks = await _logged_uplinks(console, scenario, pushed_at)
        violations = violations_at_end - violations_at_start
    await _in_executor(shutil.rmtree, state, True)
    outcome = Outcome(
        scenario,
        online_s,
        push_s,
        done,
        monitor.max_stall_ms,
        monitor.baseline_gc_ms,
        monitor.rss_growth_mib,
        served / IMAGE_SIZE,
        uplinks,
        violations,
        load,
        protocol,
    )
    print(f"  {outcome.describe()}", flush=True)
    return outcome


async def _wait_online(console: ConsoleClient, scenario: Scenario, started: float) -> float:
    """Poll the product's devices (raw JSON, as `_wait_pushed`) until all are online with their version."""
    url = f"{console.base_url}/api/devices"

    async def all_reported() -> bool:
        async with console.session.get(url, params={"product_id": scenario.product_id}) as response:
            devices = (await response.json()).get("devices", [])
        return len(devices) == scenario.n and all(
            d.get("online") and d.get("version") == INSTALLED for d in devices
        )

    await _until(all_reported, "every sub-device online with its version", START_TIMEOUT_S)
    return time.perf_counter() - started


async def _wait_pushed(console: ConsoleClient, scenario: Scenario, task_id: str) -> int:
    """Poll the task until every entry is terminal; returns how many are `done`.

    Reads the raw JSON (no per-entry dataclasses): the poll runs on the loop being measured.
    """
    states: list[str] = []

    async def settled() -> bool:
        async with console.session.get(f"{console.base_url}/api/tasks/{task_id}") as response:
            task = await response.json()
        states[:] = [str(entry.get("state")) for entry in task.get("devices", [])]
        return len(states) >= scenario.n and all(state in TERMINAL for state in states)

    await _until(settled, f"the push to {scenario.n} sub-devices", PUSH_TIMEOUT_S)
    return states.count("done")


# --- Home Assistant -------------------------------------------------------------------------------------


async def ha_setup_seconds(n: int, work: Path) -> float:
    """Run the in-process HA setup bench in a child pytest; its figure comes back in a file."""
    print(f"\n== Home Assistant: one entry with {n} sub-devices ==", flush=True)
    figures = await child_pytest(HA_BENCH, {HA_N_ENV: str(n)}, HA_OUT_ENV, work / "ha_setup", HA_TIMEOUT_S)
    print(f"  entry added -> {n} update entities available: {figures['seconds']:.2f} s", flush=True)
    return float(figures["seconds"])


async def child_pytest(
    test_file: str, env: dict[str, str], out_env: str, stem: Path, timeout_s: float
) -> dict[str, Any]:
    """Run a Home Assistant bench file in a child pytest (for the harness's in-process `hass`) with `env`;
    the JSON it writes to the file named by `out_env` (`stem`.json; its output goes to `stem`.log)."""
    out, log = stem.with_suffix(".json"), stem.with_suffix(".log")
    handle = await _in_executor(log.open, "wb")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pytest",
            test_file,
            "-q",
            "-p",
            "no:randomly",
            f"--timeout={timeout_s:g}",
            cwd=TOP,
            env=os.environ | env | {out_env: str(out)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            start_new_session=True,
        )
        try:
            await process.wait()
        except asyncio.CancelledError:
            process.terminate()
            await process.wait()
            raise
    finally:
        await _in_executor(handle.close)
    if process.returncode != 0 or not out.exists():
        tail = "\n".join((await _in_executor(log.read_text)).splitlines()[-30:])
        raise BenchError(f"the Home Assistant bench {test_file} failed:\n{tail}")
    return dict(json.loads(await _in_executor(out.read_text)))


# --- the report -----------------------------------------------------------------------------------------


def _verdict(value: Figure, ok: Callable[[float], bool]) -> str:
    return "n/a" if isinstance(value, str) else ("PASS" if ok(float(value)) else "MISS")


def _median_push(outcomes: Iterable[Outcome]) -> float | None:
    """The median push time of a scenario's runs (None when it did not run)."""
    times = [o.push_s for o in outcomes]
    return statistics.median(times) if times else None


def report(outcomes: dict[str, Outcome], ha_setup_s: Figure) -> dict[str, Figure]:
    """The JSON figures, each printed beside its target ("n/a" for a scenario that did not run)."""
    noop_100 = _median_push(o for o in outcomes.values() if o.scenario.name == "100_noop")
    noop_1000 = outcomes.get("1000_noop")
    file_1000, limited = outcomes.get("1000_file"), outcomes.get("1000_limited")
    runs_1000 = [o for o in outcomes.values() if o.scenario.n == 1000]
    figures: dict[str, Figure] = dict.fromkeys(
        [
            "online_s_1000",
            "push_s_100_noop",
            "push_s_1000_noop",
            "push_s_1000_file",
            "linearity_noop",
            "max_loop_stall_ms_1000",
            "frozen_heap_full_gc_ms",
            "rss_growth_mib_1000",
            "ha_setup_s_1000",
            "body_downloads_1000",
            "uplinks_per_device_1000_noop",
            "push_s_1000_limited",
            "uplink_msgs_1000",
            "rate_violations_1000",
            "protocol_violations",
            "limited_efficiency",
        ],
        "n/a",
    )
    if outcomes:
        figures["protocol_violations"] = sum(o.protocol_violations for o in outcomes.values())
    if noop_100 is not None:
        figures["push_s_100_noop"] = round(noop_100, 3)
    if noop_1000 is not None:
        figures["online_s_1000"] = round(noop_1000.online_s, 2)
        figures["push_s_1000_noop"] = round(noop_1000.push_s, 2)
        figures["uplinks_per_device_1000_noop"] = round(noop_1000.uplinks / 1000, 2)
    if noop_100 is not None and noop_1000 is not None:
        figures["linearity_noop"] = round((noop_1000.push_s / 1000) / (noop_100 / 100), 3)
    if file_1000 is not None:
        figures["push_s_1000_file"] = round(file_1000.push_s, 2)
    if runs_1000:
        figures["max_loop_stall_ms_1000"] = round(max(o.max_stall_ms for o in runs_1000), 1)
        figures["frozen_heap_full_gc_ms"] = round(max(o.baseline_gc_ms for o in runs_1000), 1)
        figures["rss_growth_mib_1000"] = round(max(o.rss_growth_mib for o in runs_1000), 1)
        figures["body_downloads_1000"] = round(max(o.body_downloads for o in runs_1000), 3)
    if not isinstance(ha_setup_s, str):
        figures["ha_setup_s_1000"] = round(ha_setup_s, 2)
    if limited is not None:
        figures["push_s_1000_limited"] = round(limited.push_s, 2)
        figures["uplink_msgs_1000"] = limited.uplinks
        figures["limited_efficiency"] = round(limited.uplinks / UPLINK_BUDGET_PER_S / limited.push_s, 3)
        if limited.violations is not None:
            figures["rate_violations_1000"] = limited.violations
    targets: list[tuple[str, str, Callable[[float], bool]]] = [
        ("online_s_1000", f"<= {MAX_ONLINE_S:g}", lambda v: v <= MAX_ONLINE_S),
        ("push_s_1000_noop", f"<= {MAX_PUSH_S_1000_NOOP:g}", lambda v: v <= MAX_PUSH_S_1000_NOOP),
        ("linearity_noop", f"<= {MAX_LINEARITY:g}", lambda v: v <= MAX_LINEARITY),
        ("max_loop_stall_ms_1000", f"<= {MAX_STALL_MS:g}", lambda v: v <= MAX_STALL_MS),
        ("rss_growth_mib_1000", f"<= {MAX_RSS_GROWTH_MIB:g}", lambda v: v <= MAX_RSS_GROWTH_MIB),
        ("ha_setup_s_1000", f"<= {MAX_HA_SETUP_S:g}", lambda v: v <= MAX_HA_SETUP_S),
        ("body_downloads_1000", "= 1", lambda v: v == 1),
        ("rate_violations_1000", "= 0", lambda v: v == 0),
        ("protocol_violations", "= 0", lambda v: v == 0),
        ("limited_efficiency", f">= {MIN_LIMITED_EFFICIENCY:g}", lambda v: v >= MIN_LIMITED_EFFICIENCY),
    ]
    print("\n== Figures against the targets ==")
    for name, target, ok in targets:
        value = figures[name]
        print(f"  {name:<28} {value!s:<10} target {target:<8} {_verdict(value, ok)}")
    for name in (
        "push_s_100_noop",
        "push_s_1000_file",
        "uplinks_per_device_1000_noop",
        "frozen_heap_full_gc_ms",
    ):
        print(f"  {name:<28} {figures[name]!s:<10} (no target)")
    return figures


# --- the run --------------------------------------------------------------------------------------------


async def run_on_emulator(
    name: str, scenarios: Sequence[Scenario], emulator_args: Sequence[str], work: Path
) -> dict[str, Outcome]:
    """The scenarios one after the other against one emulator started with `emulator_args`."""
    outcomes: dict[str, Outcome] = {}
    emulator = EmulatorProcess(work / name, work / f"{name}.log", emulator_args)
    try:
        print(f"\n== Setting up the emulator {' '.join(emulator_args)} ({_machine()}) ==", flush=True)
        endpoints = await emulator.start()
        async with aiohttp.ClientSession() as http:
            console = ConsoleClient(endpoints.http_url, http)
            strict = "--strict-limits" in emulator_args
            async with http.put(
                endpoints.http_url + "/api/limits", json={"strict": strict} | BENCH_LIMITS
            ) as response:
                response.raise_for_status()
            for scenario in scenarios:
                options = budget_options(scenario.flavor)
                assert options is not None
                outcomes[scenario.tag] = await run_scenario(endpoints, console, scenario, options, work)
    finally:
        await emulator.stop()
    return outcomes


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Figure]:
    """Every scenario inside `work` (the caller deletes it), then Home Assistant.

    The budget-off scenarios share an emulator that enforces no rate; the limited one gets an emulator of its
    own that enforces `LIMITED_EMULATOR_ARGS`.
    """
    # N = 100 takes a fraction of a second, so a disturbed run would swing `linearity_noop`: median of several.
    scenarios = [Scenario(100, "noop", repeat) for repeat in range(1, SMALL_REPEATS + 1)]
    scenarios += [Scenario(1000, "noop"), Scenario(1000, "file"), Scenario(1000, "limited")]
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only]
    runnable = [s for s in scenarios if budget_options(s.flavor) is not None]
    for skipped in set(scenarios) - set(runnable):
        print(f"\n== {skipped.tag}: skipped, this engine has no uplink budget (n/a) ==", flush=True)
    outcomes: dict[str, Outcome] = {}
    unlimited = [s for s in runnable if s.flavor != "limited"]
    limited = [s for s in runnable if s.flavor == "limited"]
    if unlimited:
        outcomes |= await run_on_emulator("emulator", unlimited, (), work)
    if limited:
        outcomes |= await run_on_emulator("emulator-limited", limited, LIMITED_EMULATOR_ARGS, work)
    ha_setup_s: Figure = "n/a" if args.skip_ha else await ha_setup_seconds(1000, work)
    figures = report(outcomes, ha_setup_s)
    print(f"  ({_machine()} at the end)")
    return figures


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench --scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-ha", action="store_true", help="leave out the Home Assistant setup timing")
    parser.add_argument(
        "--only",
        action="append",
        help="run only this scenario (100_noop, 1000_noop, 1000_file, 1000_limited)",
    )
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary files go (~4.5 GiB)")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the figures and the JSON line."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    return run_benchmark(args, "tencent-iot-bench-scale-", bench)


if __name__ == "__main__":
    sys.exit(main())
