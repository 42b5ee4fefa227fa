"""Benchmark, not a test (pytest does not collect this file unless named): Home Assistant bridging N sensors
(default 300) that change every second, beside 100 sub-devices receiving firmware, through one gateway
connection to the emulator with its strict limits (30 uplink messages a second, the excess dropped and counted).

`scripts/bench --bridge` (scripts/py/bench_bridge.py) runs it in a child pytest for pytest-homeassistant-
custom-component's in-process `hass` (asyncio debug mode off, as a real Home Assistant), and reads what it
measured from the JSON file named by `TENCENT_IOT_BENCH_BRIDGE_OUT`. The emulator runs in a process of its
own; it records when each report arrived (`things.ReportArrival`), which is where staleness is measured.

Set-up (not timed): the gateway's entry with the 100 sub-devices (the `file` flasher, install policy `auto`),
then a sensor bridge of the N temperature sensors and a switch bridge of one `input_boolean`, both through the
subentry flow with dynamic registration, until every device is online with its first report in. The heap is
then frozen (`bench_support.monitor.Monitor`) and, in order:

1. OTA without the bridge's traffic (the sensors do not change): a push to the 100 sub-devices, the wait of
   each of its markers and outcomes for the uplink budget recorded (`UplinkLimiter.submit`).
2. The sensors change every second (each its own phase of the second): after a warm-up, a window in which
   each change's staleness is the time until the cloud had it or a later one.
3. While they go on changing, the same push of a newer version: staleness of the changes during the push,
   and each OTA message's wait again, against the same message of step 1.
4. The sensors stop; once the cloud has every last value, controls from the console to the switch: each one's
   latency from the cloud's send to the cloud's receipt of the new value (Home Assistant's state between).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
import hashlib
import json
import logging
import os
from pathlib import Path
import time
from typing import Any

import aiohttp
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.const import ATTR_DEVICE_CLASS, ATTR_UNIT_OF_MEASUREMENT, UnitOfTemperature
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import pytest

from bench_support.bridge_figures import (
    CONTROLS_ENV,
    N_ENV,
    OTA_ENV,
    OUT_ENV,
    WINDOW_ENV,
    change_of,
    extra_waits,
    percentile,
    staleness,
    temperature,
)
from bench_support.monitor import Monitor
from custom_components.tencent_iot_gateway.bridge.const import (
    CONF_CATEGORY,
    CONF_CREATION,
    CONF_ENTITIES,
    CONF_PROPERTIES,
    CONF_READ_ONLY,
    SUBENTRY_BRIDGE,
)
from custom_components.tencent_iot_gateway.const import (
    CONF_CA_CERT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_HOST,
    CONF_INSTALL_POLICY,
    CONF_PORT,
    CONF_PRODUCT_ID,
    CONF_PRODUCT_SECRET,
    CONF_REGION,
    CONF_REGISTRATION_URL,
    CONF_TLS,
    CONF_UNBIND_ON_REMOVE,
    DOMAIN,
)
from custom_components.tencent_iot_gateway.engine.mqtt.rate_budget import UplinkLimiter
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import Payload, UplinkPriority
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.process import EmulatorProcess, Endpoints

from .gateway_rig import add_entry
from .helpers import LIGHT_PRODUCT, sub

DEFAULT_N = 300
DEFAULT_OTA = 100
DEFAULT_WINDOW_S = 60.0
DEFAULT_CONTROLS = 30

GATEWAY = ("BRBENCHGW1", "gw01")
SENSOR_PRODUCT = "BRBSENSOR1"
SWITCH_PRODUCT = "BRBSWITCH1"
PRODUCT_SECRET = "QlJJREdFLUJFTkNILVNFQ1JFVA=="
SWITCH = "input_boolean.bench_switch"
IMAGE_SIZE = 64 * 1024  # the push's cost is its messages, not its bytes
INSTALLED, FIRST, SECOND = "0.1", "1.0", "2.0"
OTA_PRIORITIES = frozenset({UplinkPriority.TERMINAL, UplinkPriority.MARKER})
TERMINAL = frozenset({"done", "fail", "timeout"})
TICKS_PER_S = 10  # the sensors change in this many slices of a second, each its own tenth of them
WARM_UP_S = 15.0  # a round of the budget (N / 30 s) and some: the window sees the steady state
GAP_S = 15.0  # after the window, before the push: the window's changes are all in by then
POLL_S = 0.5
SETTLE_TIMEOUT_S = 600.0
PUSH_TIMEOUT_S = 600.0
DRAIN_TIMEOUT_S = 120.0
CONTROL_TIMEOUT_S = 10.0
CONTROL_PAUSE_S = 0.2


@dataclass(slots=True)
class UplinkRecorder:
    """Each OTA marker's and outcome's wait for the budget, while `recording`; and the connection's limiter."""

    recording: bool = False
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    limiter: UplinkLimiter | None = None

    def take(self) -> dict[str, list[float]]:
        """The waits recorded since the last `take`, by message (device, state, percent, occurrence)."""
        waits, self.waits = self.waits, defaultdict(list)
        keyed: dict[str, list[float]] = {}
        for key, values in waits.items():
            for occurrence, value in enumerate(values):
                keyed[f"{key} #{occurrence}"] = [value]
        return keyed

    def add(self, topic: str, payload: str, waited_s: float) -> None:
        """One message handed over after `waited_s`."""
        try:
            progress = json.loads(payload)["report"]["progress"]
            what = f"{progress.get('state')} {progress.get('percent', '')}"
        except ValueError, KeyError, TypeError:
            what = "other"
        self.waits[f"{topic} {what}"].append(waited_s)

    @property
    def waiting(self) -> int:
        """Messages waiting for the budget now."""
        return 0 if self.limiter is None else self.limiter.waiting


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> UplinkRecorder:
    """`UplinkLimiter.submit` timed: the engine's code runs unchanged, its waits are recorded beside it."""
    recorder = UplinkRecorder()
    original = UplinkLimiter.submit

    async def submit(
        self: UplinkLimiter,
        topic: str,
        payload: Payload,
        qos: int,
        priority: UplinkPriority = UplinkPriority.CONTROL,
        coalesce_key: str | None = None,
    ) -> int | None:
        recorder.limiter = self
        started = time.monotonic()
        mid = await original(self, topic, payload, qos, priority, coalesce_key)
        if recorder.recording and priority in OTA_PRIORITIES and isinstance(payload, str):
            recorder.add(topic, payload, time.monotonic() - started)
        return mid

    monkeypatch.setattr(UplinkLimiter, "submit", submit)
    return recorder


@pytest.fixture
async def emulator_process(socket_enabled: None, tmp_path: Path) -> AsyncIterator[Endpoints]:
    """`python -m tencent_iot_emulator serve --strict-limits` in its own process."""
    process = EmulatorProcess(tmp_path / "emulator", tmp_path / "emulator.log", ("--strict-limits",))
    try:
        yield await process.start()
    finally:
        await process.stop()


class Sensors:
    """The bridged sensors' states, set directly (no integration behind them: the cheapest entity), each
    change numbered (`bridge_figures.temperature`) and timed when it is set."""

    def __init__(self, hass: HomeAssistant, n: int) -> None:
        """`sensor.bench_000` ... at change 0."""
        self._hass = hass
        self.entity_ids = [f"sensor.bench_{i:03d}" for i in range(n)]
        self.changes: dict[str, list[tuple[int, float]]] = {e: [] for e in self.entity_ids}
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        for entity_id in self.entity_ids:
            self._set(entity_id, 0)

    @property
    def last_change(self) -> int:
        """The change every sensor is at."""
        return max(0, self._next - 1)

    def _set(self, entity_id: str, change: int) -> None:
        self.changes[entity_id].append((change, time.time()))
        self._hass.states.async_set(
            entity_id,
            str(temperature(change)),
            {ATTR_DEVICE_CLASS: "temperature", ATTR_UNIT_OF_MEASUREMENT: UnitOfTemperature.CELSIUS},
        )

    def start(self) -> None:
        """Every sensor changes once a second from now on."""
        self._task = self._hass.async_create_background_task(self._run(), "bench sensors")

    async def stop(self) -> None:
        """After the current second's changes."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        slices = [self.entity_ids[i::TICKS_PER_S] for i in range(TICKS_PER_S)]
        started = time.monotonic()
        second = 0
        while True:
            second += 1
            self._next = second
            for index, entity_ids in enumerate(slices):
                await asyncio.sleep(max(0.0, started + second - 1 + index / TICKS_PER_S - time.monotonic()))
                for entity_id in entity_ids:
                    self._set(entity_id, second)

    def between(self, start: float, end: float) -> dict[str, list[tuple[int, float]]]:
        """Each sensor's changes set in [start, end)."""
        return {e: [c for c in changes if start <= c[1] < end] for e, changes in self.changes.items()}


def device_name(entity_id: str) -> str:
    """The device the bridge names after an entity."""
    return entity_id.replace(".", "_")


async def add_bridge(
    hass: HomeAssistant,
    entry: ConfigEntry,
    endpoints: Endpoints,
    product_id: str,
    category: str,
    entities: list[str],
) -> None:
    """A bridge subentry through its flow, as the frontend makes it (dynamic registration)."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BRIDGE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_PRODUCT_ID: product_id,
            CONF_CATEGORY: category,
            CONF_CREATION: "register",
            CONF_READ_ONLY: False,
            CONF_UNBIND_ON_REMOVE: True,
        },
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_ENTITIES: entities,
            CONF_PRODUCT_SECRET: PRODUCT_SECRET,
            CONF_REGISTRATION_URL: endpoints.https_url,
            CONF_PROPERTIES: {},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result


async def until(
    probe: Callable[[], Awaitable[bool]], what: str, within: float, poll_s: float = POLL_S
) -> None:
    """Poll until `probe` is true."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(poll_s)


class Cloud:
    """What the bench asks the emulator's console (raw JSON where many devices are polled)."""

    def __init__(self, console: ConsoleClient) -> None:
        """Over `console`'s session."""
        self.console = console

    async def get(self, path: str, **params: str) -> Any:
        """A console GET's JSON."""
        async with self.console.session.get(self.console.base_url + path, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def properties(self, product_id: str, name: str) -> dict[str, Any]:
        """A device's data as the console shows it."""
        return dict(await self.get(f"/api/devices/{product_id}/{name}/properties"))

    async def arrivals(self, entity_ids: list[str]) -> dict[str, list[tuple[float, int]]]:
        """Each sensor's accepted reports: (arrival time, change carried)."""
        found: dict[str, list[tuple[float, int]]] = {}
        for entity_id in entity_ids:
            raw = await self.properties(SENSOR_PRODUCT, device_name(entity_id))
            found[entity_id] = [
                (float(r["time"]), change)
                for r in raw.get("reports", [])
                if (change := change_of(r.get("params", {}).get("current_temp"))) is not None
            ]
        return found

    async def limit_violations(self) -> int:
        """Publishes the strict broker dropped for going over the rate (and any other limit) so far."""
        return int((await self.get("/api/limits")).get("violations", {}).get("limit", 0))

    async def settled(self, product_id: str, names: list[str]) -> bool:
        """Every device online with its info and a first report in."""
        for name in names:
            raw = await self.properties(product_id, name)
            if raw.get("info") is None or not raw.get("reported"):
                return False
        devices = (await self.get("/api/devices", product_id=product_id)).get("devices", [])
        return len(devices) >= len(names) and all(d.get("online") for d in devices)

    async def ota_online(self, n: int) -> bool:
        """The sub-devices online with their version reported."""
        devices = (await self.get("/api/devices", product_id=LIGHT_PRODUCT)).get("devices", [])
        return len(devices) == n and all(d.get("online") and d.get("version") == INSTALLED for d in devices)

    async def push(self, version: str, from_version: str, n: int) -> float:
        """A push to every sub-device; seconds until every one's task entry is terminal."""
        # Each version's own bytes: the engine's cache is keyed by content, and a second push of the same
        # bytes would skip the download (and its markers), unlike the push it is compared with.
        image = hashlib.sha256(version.encode()).digest() * (IMAGE_SIZE // 32)
        await self.console.upload_firmware(LIGHT_PRODUCT, version, image)
        started = time.monotonic()
        task_id = await self.console.create_task(
            LIGHT_PRODUCT, version, "all", from_versions=[from_version], url_scheme="http"
        )

        async def pushed() -> bool:
            task = await self.get(f"/api/tasks/{task_id}")
            states = [str(e.get("state")) for e in task.get("devices", [])]
            return len(states) >= n and all(s in TERMINAL for s in states)

        await until(pushed, f"the push of {version}", PUSH_TIMEOUT_S, 0.2)
        return time.monotonic() - started


def stale_figures(
    sensors: Sensors, arrivals: dict[str, list[tuple[float, int]]], start: float, end: float
) -> dict[str, Any]:
    """Staleness of the changes set in [start, end)."""
    seconds: list[float] = []
    missing = 0
    for entity_id, changes in sensors.between(start, end).items():
        measured = staleness(changes, arrivals.get(entity_id, []))
        seconds.extend(measured.seconds)
        missing += measured.missing
    if not seconds:
        return {"changes": 0, "missing": missing}
    return {
        "changes": len(seconds),
        "missing": missing,
        "p50_s": round(percentile(seconds, 50), 3),
        "p99_s": round(percentile(seconds, 99), 3),
        "max_s": round(max(seconds), 3),
    }


def ota_figures(without: dict[str, list[float]], with_bridge: dict[str, list[float]]) -> dict[str, Any]:
    """The OTA messages' waits for the budget in the two pushes."""
    flat_without = [w for ws in without.values() for w in ws]
    flat_with = [w for ws in with_bridge.values() for w in ws]
    paired = extra_waits(without, with_bridge)
    figures: dict[str, Any] = {"messages_without": len(flat_without), "messages_with": len(flat_with)}
    for name, waits in (("without", flat_without), ("with", flat_with)):
        if waits:
            figures |= {
                f"p50_wait_s_{name}": round(percentile(waits, 50), 3),
                f"p95_wait_s_{name}": round(percentile(waits, 95), 3),
                f"max_wait_s_{name}": round(max(waits), 3),
            }
    if flat_without and flat_with:
        figures["max_wait_delay_s"] = round(max(flat_with) - max(flat_without), 3)
    if paired:
        figures |= {"paired": len(paired), "paired_extra_max_s": round(max(paired), 3)}
    return figures


async def test_bridge_bench(
    hass: HomeAssistant, emulator_process: Endpoints, recorder: UplinkRecorder, tmp_path: Path
) -> None:
    """Set up, then the four steps of the module docstring; the figures go to `TENCENT_IOT_BENCH_BRIDGE_OUT`."""
    n = int(os.environ.get(N_ENV, DEFAULT_N))
    n_ota = int(os.environ.get(OTA_ENV, DEFAULT_OTA))
    window_s = float(os.environ.get(WINDOW_ENV, DEFAULT_WINDOW_S))
    n_controls = int(os.environ.get(CONTROLS_ENV, DEFAULT_CONTROLS))
    asyncio.get_running_loop().set_debug(False)  # as in scale_setup_bench.py: a real HA runs without it
    # The harness logs everything at DEBUG; Home Assistant's own default is INFO (bootstrap), and the bridge's
    # debug lines for every report would be the bench's cost, not the bridge's.
    logging.getLogger().setLevel(logging.INFO)
    figures: dict[str, Any] = {"n": n, "ota_devices": n_ota, "window_s": window_s}
    async with aiohttp.ClientSession() as http:
        console = ConsoleClient(emulator_process.http_url, http)
        cloud = Cloud(console)
        # The strict limits, without the 100-subscription limit of older IoT Hub (as the scale bench): one
        # gateway with N + 100 sub-devices subscribes more topics than that.
        async with http.put(
            emulator_process.http_url + "/api/limits", json={"strict": True, "max_subscriptions": 0}
        ) as response:
            response.raise_for_status()
        gateway = await console.add_device(*GATEWAY)
        for product_id, category in ((SENSOR_PRODUCT, "sensor"), (SWITCH_PRODUCT, "switch")):
            await console.add_product(product_id, PRODUCT_SECRET)
            await console.set_template(product_id, category)
        names = [f"ota{i:03d}" for i in range(n_ota)]
        await console.add_product(LIGHT_PRODUCT)
        await console.add_devices([(LIGHT_PRODUCT, name) for name in names])
        await console.bind_many(gateway.key, [f"{LIGHT_PRODUCT}/{name}" for name in names])

        sensors = Sensors(hass, n)
        assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"bench_switch": {}}})
        switched: dict[bool, list[float]] = {True: [], False: []}

        @callback
        def on_switch(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            if new is not None:
                switched[new.state == "on"].append(time.time())

        unsubscribe = hass.bus.async_listen(
            "state_changed", on_switch, event_filter=callback(lambda data: data["entity_id"] == SWITCH)
        )
        started = time.monotonic()
        entry = await add_entry(
            hass,
            {
                CONF_REGION: "custom",
                CONF_PRODUCT_ID: gateway.product_id,
                CONF_DEVICE_NAME: gateway.device_name,
                CONF_DEVICE_SECRET: gateway.device_secret,
                CONF_HOST: "127.0.0.1",
                CONF_PORT: emulator_process.mqtts_port,
                CONF_TLS: True,
                CONF_CA_CERT: emulator_process.ca_file.read_text(encoding="utf-8"),
            },
            options={CONF_INSTALL_POLICY: "auto"},
            subentries=[
                sub(name, flasher={"kind": "file", "directory": str(tmp_path / name)}) for name in names
            ],
        )
        await add_bridge(hass, entry, emulator_process, SENSOR_PRODUCT, "sensor", sensors.entity_ids)
        await add_bridge(hass, entry, emulator_process, SWITCH_PRODUCT, "switch", [SWITCH])
        await until(lambda: cloud.ota_online(n_ota), "the sub-devices online", SETTLE_TIMEOUT_S)
        sensor_names = [device_name(e) for e in sensors.entity_ids]
        await until(
            lambda: cloud.settled(SENSOR_PRODUCT, sensor_names), "the sensors online", SETTLE_TIMEOUT_S, 2.0
        )
        await until(
            lambda: cloud.settled(SWITCH_PRODUCT, [device_name(SWITCH)]),
            "the switch online",
            SETTLE_TIMEOUT_S,
        )
        await until(lambda: _true(recorder.waiting == 0), "the uplink queue empty", SETTLE_TIMEOUT_S)
        figures["setup_s"] = round(time.monotonic() - started, 1)
        print(f"\nset up in {figures['setup_s']} s: {n} sensors, 1 switch, {n_ota} sub-devices", flush=True)

        async with Monitor() as monitor:
            # 1. OTA alone.
            recorder.recording = True
            alone_at = time.time()
            figures["ota_push_s_without_bridge"] = round(await cloud.push(FIRST, INSTALLED, n_ota), 2)
            measured_at = (alone_at, time.time())
            without = recorder.take()
            print(
                f"push of {FIRST} without bridge traffic: {figures['ota_push_s_without_bridge']} s",
                flush=True,
            )
            await until(lambda: _true(recorder.waiting == 0), "the versions reported", DRAIN_TIMEOUT_S)
            # 2. The sensors change; the window.
            sensors.start()
            await asyncio.sleep(WARM_UP_S)
            window = (time.time(), time.time() + window_s)
            await asyncio.sleep(window_s + GAP_S)
            # 3. The same push, newer, while they change.
            pushed_at = time.time()
            figures["ota_push_s_with_bridge"] = round(await cloud.push(SECOND, FIRST, n_ota), 2)
            during = (pushed_at, time.time())
            with_bridge = recorder.take()
            recorder.recording = False
            print(
                f"push of {SECOND} with the sensors changing: {figures['ota_push_s_with_bridge']} s",
                flush=True,
            )
            await sensors.stop()
            last = sensors.last_change

            async def caught_up() -> bool:
                arrivals = await cloud.arrivals(sensors.entity_ids)
                return all(a and max(c for _, c in a) >= last for a in arrivals.values())

            await until(caught_up, "the last values in the cloud", DRAIN_TIMEOUT_S, 2.0)
            arrivals = await cloud.arrivals(sensors.entity_ids)
            figures["staleness"] = stale_figures(sensors, arrivals, *window)
            figures["staleness_during_ota"] = stale_figures(sensors, arrivals, *during)
            figures["ota"] = ota_figures(without, with_bridge)
            # 4. Controls, idle.
            await until(lambda: _true(recorder.waiting == 0), "the uplink queue empty", DRAIN_TIMEOUT_S)
            latencies: list[float] = []
            to_ha: list[float] = []
            switch_name = device_name(SWITCH)
            for i in range(n_controls):
                value = 1 - i % 2  # on, off, on, ...
                sent = await console.send_control(SWITCH_PRODUCT, switch_name, {"power_switch": value})

                async def back(value: int = value, since: float = sent.sent_at) -> bool:
                    raw = await cloud.properties(SWITCH_PRODUCT, switch_name)
                    return any(
                        r["time"] >= since and r.get("params", {}).get("power_switch") == value
                        for r in raw.get("reports", [])
                    )

                await until(back, "the switch reported back", CONTROL_TIMEOUT_S, 0.02)
                raw = await cloud.properties(SWITCH_PRODUCT, switch_name)
                arrived = min(
                    r["time"]
                    for r in raw["reports"]
                    if r["time"] >= sent.sent_at and r.get("params", {}).get("power_switch") == value
                )
                latencies.append(arrived - sent.sent_at)
                in_ha = [t for t in switched[bool(value)] if t >= sent.sent_at]
                if in_ha:
                    to_ha.append(min(in_ha) - sent.sent_at)
                await asyncio.sleep(CONTROL_PAUSE_S)
            figures["control"] = {
                "count": len(latencies),
                "p50_ms": round(percentile(latencies, 50) * 1000, 1),
                "p95_ms": round(percentile(latencies, 95) * 1000, 1),
                "max_ms": round(max(latencies) * 1000, 1),
                "to_ha_state_p95_ms": round(percentile(to_ha, 95) * 1000, 1) if to_ha else None,
            }
        figures["max_loop_stall_ms"] = round(monitor.max_stall_ms, 1)
        # The most the loop's thread computed in any long stall: the part of the stalls that is our code's.
        figures["max_loop_stall_cpu_ms"] = round(max((s.cpu_ms for s in monitor.stalls), default=0.0), 1)
        phases = {"ota_alone": measured_at, "window": window, "during_ota": during}
        figures["stalls"] = [
            {
                "late_ms": round(s.late_ms, 1),
                "cpu_ms": round(s.cpu_ms, 1),
                "phase": next((k for k, (a, b) in phases.items() if a <= s.at <= b), "between"),
            }
            for s in monitor.stalls
        ]
        figures["frozen_heap_full_gc_ms"] = round(monitor.baseline_gc_ms, 1)
        figures["rss_growth_mib"] = round(monitor.rss_growth_mib, 1)
        figures["rate_violations"] = await cloud.limit_violations()
        unsubscribe()
    print(json.dumps(figures, indent=1), flush=True)
    out = os.environ.get(OUT_ENV)
    if out:
        await hass.async_add_executor_job(Path(out).write_text, json.dumps(figures), "utf-8")
    for loaded in hass.config_entries.async_entries(DOMAIN):
        if loaded.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()


async def _true(value: bool) -> bool:
    return value
