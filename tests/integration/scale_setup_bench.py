"""Benchmark, not a test (pytest does not collect this file unless named): Home Assistant setting up one entry
with N sub-devices (default 1,000), timed from the entry being added until every update entity is available.

`scripts/bench --scale` runs it in a child pytest (`pytest tests/integration/scale_setup_bench.py`) for
pytest-homeassistant-custom-component's in-process `hass`, and reads the figure from the JSON file named by
`TENCENT_IOT_BENCH_HA_OUT`. The emulator runs in a process of its own, so its work (a thousand `online` and
version reports) is not counted against Home Assistant's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import os
from pathlib import Path
import time

import aiohttp
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_CA_CERT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_HOST,
    CONF_PORT,
    CONF_PRODUCT_ID,
    CONF_REGION,
    CONF_TLS,
    DOMAIN,
)
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.process import EmulatorProcess, Endpoints

from .gateway_rig import add_entry
from .helpers import LIGHT_PRODUCT, sub

OUT_ENV = "TENCENT_IOT_BENCH_HA_OUT"
N_ENV = "TENCENT_IOT_BENCH_HA_N"
DEFAULT_N = 1000
GATEWAY = ("SCALEHA001", "gw01")
SETUP_TIMEOUT_S = 600.0


@pytest.fixture
async def emulator_process(socket_enabled: None, tmp_path: Path) -> AsyncIterator[Endpoints]:
    """`python -m tencent_iot_emulator serve` in its own process."""
    process = EmulatorProcess(tmp_path / "emulator", tmp_path / "emulator.log")
    try:
        yield await process.start()
    finally:
        await process.stop()


async def test_setup_scale(hass: HomeAssistant, emulator_process: Endpoints) -> None:
    """Register and bind N lights in the emulator, add the entry, wait for every update entity."""
    n = int(os.environ.get(N_ENV, DEFAULT_N))
    # The harness runs the loop in asyncio's debug mode, which records a stack for every callback and task
    # (a third of the time here); a real Home Assistant does not, so neither does the timed part.
    asyncio.get_running_loop().set_debug(False)
    names = [f"scale{i:04d}" for i in range(n)]
    async with aiohttp.ClientSession() as http:
        console = ConsoleClient(emulator_process.http_url, http)
        gateway = await console.add_device(*GATEWAY)
        await console.add_devices([(LIGHT_PRODUCT, name) for name in names])
        await console.bind_many(gateway.key, [f"{LIGHT_PRODUCT}/{name}" for name in names])
    data = {
        CONF_REGION: "custom",
        CONF_PRODUCT_ID: gateway.product_id,
        CONF_DEVICE_NAME: gateway.device_name,
        CONF_DEVICE_SECRET: gateway.device_secret,
        CONF_HOST: "127.0.0.1",
        CONF_PORT: emulator_process.mqtts_port,
        CONF_TLS: True,
        CONF_CA_CERT: emulator_process.ca_file.read_text(encoding="utf-8"),
    }
    pending = {f"update.{name}_firmware" for name in names}
    all_available = asyncio.Event()

    @callback
    def on_change(event: Event[EventStateChangedData]) -> None:
        state = event.data["new_state"]
        if state is not None and state.state != STATE_UNAVAILABLE:
            pending.discard(event.data["entity_id"])
            if not pending:
                all_available.set()

    unsubscribe = hass.bus.async_listen("state_changed", on_change)
    try:
        started = time.perf_counter()
        entry = await add_entry(hass, data, subentries=[sub(name) for name in names])
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            await all_available.wait()
        seconds = time.perf_counter() - started
    finally:
        unsubscribe()
    print(f"\n{n} update entities available {seconds:.2f} s after the entry was added")
    async with aiohttp.ClientSession() as http:
        # The emulator's default limits hold (one topic per SUBSCRIBE among them): a setup that got there by
        # breaking one does not count.
        assert await ConsoleClient(emulator_process.http_url, http).violations() == []
    out = os.environ.get(OUT_ENV)
    if out:
        text = json.dumps({"n": n, "seconds": seconds})
        await hass.async_add_executor_job(Path(out).write_text, text, "utf-8")
    for loaded in hass.config_entries.async_entries(DOMAIN):
        if loaded.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
