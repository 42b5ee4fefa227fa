"""Life cycle: a download interrupted by an unload resumes after the next setup; unload leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
import threading

from homeassistant.components.update.const import ATTR_INSTALLED_VERSION
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway
from .helpers import (
    LIGHT_PRODUCT,
    VERSION,
    available,
    install_update,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

FIRMWARE = bytes(range(251)) * 4200  # ~1 MiB, a length that is no multiple of the chunk size
CHUNK = 256 * 1024  # the Downloader's chunk size
LIGHT = DeviceId(LIGHT_PRODUCT, "light1")
ENGINE_TASK_PREFIXES = ("ota ", "download ")
# /proc/net/tcp state of an established connection.
TCP_ESTABLISHED = "01"


def _engine_tasks() -> list[asyncio.Task[object]]:
    """Running tasks of the engine or the runtime (by name, or by where their coroutine lives)."""
    found = []
    for task in asyncio.all_tasks():
        if task.done() or task is asyncio.current_task():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        where = code.co_filename if code is not None else ""
        if task.get_name().startswith(ENGINE_TASK_PREFIXES) or "tencent_iot_gateway" in where:
            found.append(task)
    return found


def _established_to(port: int) -> int:
    """Established IPv4 TCP connections whose remote end is `port` on this host (our client sockets)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if remote_port == port and fields[3] == TCP_ESTABLISHED:
            count += 1
    return count


async def test_download_resumes_after_unload_and_setup(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """Unloaded mid-download (throttled): the install call ends with an error, the partial file and its
    state stay; set up again on the same hass, the job resumes with a Range request and completes.
    The server sent at most one chunk more than the image, and the new version is installed.
    """
    await register_lights(gateway, "light1")
    flash_dir = tmp_path / "flashed"
    entry = await setup_gateway(
        hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(flash_dir)})]
    )
    console = gateway.emulator.console
    await console.set_faults({"firmware": {f"{LIGHT_PRODUCT}/{VERSION}": {"throttle_bps": 400_000}}})
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, "update.light1_firmware").state == STATE_ON)

    install = hass.async_create_task(install_update(hass, "update.light1_firmware"))
    runtime = entry.runtime_data
    await wait_for(hass, lambda: runtime.snapshot(LIGHT).downloaded >= 300_000)
    assert runtime.snapshot(LIGHT).state is JobState.DOWNLOADING

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(HomeAssistantError) as caught:
        await install
    # Only unloaded, not reloaded: the call ends, saying the job resumes with the next setup.
    assert caught.value.translation_key == "install_not_resumed"
    target = runtime.snapshot(LIGHT).target
    assert target is not None, "the pending firmware was lost on unload"
    resume = await runtime.downloader.resume_state(target)
    assert resume is not None
    assert 0 < resume.downloaded < len(FIRMWARE)
    assert "?" not in resume.url
    assert _engine_tasks() == []

    await console.reset_faults()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # The pending update and the install request survived: the job resumes on its own after reconnecting.
    await wait_for(
        hass,
        lambda: state(hass, "update.light1_firmware").attributes[ATTR_INSTALLED_VERSION] == VERSION,
        within=10,
    )
    assert (flash_dir / f"{LIGHT_PRODUCT}_light1_{VERSION}.bin").read_bytes() == FIRMWARE
    stats = await console.stats()
    counters = stats.firmware[f"{LIGHT_PRODUCT}/{VERSION}"]
    assert counters.requests == 2, counters
    assert len(FIRMWARE) <= counters.bytes <= len(FIRMWARE) + CHUNK, counters

    async def reported() -> bool:
        return (await console.get_device(LIGHT_PRODUCT, "light1")).version == VERSION

    await eventually(reported)


async def test_unload_and_reload_leave_nothing_behind(hass: HomeAssistant, gateway: Gateway) -> None:
    """After unload: the gateway is offline in the cloud, no engine task, no new thread, no MQTT socket.

    (HA's harness checks lingering tasks and timers at the end of every test as well.)
    """
    await register_lights(gateway, "light1")
    threads_before = {t.ident for t in threading.enumerate() if not _is_executor(t)}
    entry = await setup_gateway(hass, gateway, [sub("light1")])
    port = gateway.emulator.mqtts_port
    assert _established_to(port) == 1
    assert _engine_tasks()  # the session's supervisor and timers run while loaded

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    assert entry.state is ConfigEntryState.LOADED

    async def one_connection() -> bool:
        return _established_to(port) == 1

    await eventually(one_connection)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    async def gateway_offline() -> bool:
        status = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
        return not status.online

    await eventually(gateway_offline)
    assert not (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).online
    assert _engine_tasks() == []
    assert _established_to(port) == 0
    threads_after = {t.ident for t in threading.enumerate() if not _is_executor(t)}
    assert threads_after <= threads_before


def _is_executor(thread: threading.Thread) -> bool:
    """HA's executor workers come and go with any executor job; they are not ours."""
    return thread.name.startswith(("SyncWorker", "ThreadPoolExecutor", "ImportExecutor", "Recorder"))


async def test_home_assistant_stopping_closes_the_session(hass: HomeAssistant, gateway: Gateway) -> None:
    """HA does not unload entries when it stops: the integration disconnects by itself, and unload later is fine."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1")])
    port = gateway.emulator.mqtts_port
    assert _established_to(port) == 1

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()

    async def gateway_offline() -> bool:
        status = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
        return not status.online

    await eventually(gateway_offline)
    assert _established_to(port) == 0
    assert _engine_tasks() == []
    assert await hass.config_entries.async_unload(entry.entry_id)  # a second stop is harmless
