"""The typed console client against the real firmware server and virtual devices, and its error handling."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tencent_iot_emulator.console_client import (
    ConsoleClient,
    ConsoleError,
    DeviceCredentials,
    DeviceStatus,
    FirmwareCounters,
    TaskStatus,
)
from tencent_iot_emulator.faults import DownloadFaults, FaultConfig

from .firmware_support import PRODUCT, Rig, image, md5_hex, rig_fixture

__all__ = ["rig_fixture"]


async def test_firmware_faults_and_stats(rig: Rig, tmp_path: Path) -> None:
    """upload (from a file, streamed), list, faults set/get/reset and stats, all typed."""
    console = ConsoleClient(rig.base_url + "/", rig.session)
    data = image(300_000)
    path = tmp_path / "fw.bin"
    path.write_bytes(data)
    info = await console.upload_firmware(PRODUCT, "1.0", path)
    assert (info.md5, info.size) == (md5_hex(data), len(data))
    assert await console.list_firmware() == [info]

    faults = await console.set_faults({"ignore_range": True, "url_ttl_s": 9})
    assert faults == FaultConfig(url_ttl_s=9.0, global_faults=DownloadFaults(ignore_range=True))
    assert await console.get_faults() == faults
    assert (await console.reset_faults()).global_faults == DownloadFaults()

    firmware = rig.store.get(PRODUCT, "1.0")
    assert firmware is not None
    async with rig.session.get(rig.url(firmware)) as response:
        await response.read()
    stats = await console.stats()
    assert stats.firmware == {f"{PRODUCT}/1.0": FirmwareCounters(1, len(data))}
    assert (stats.not_found, stats.forbidden) == (0, 0)


async def test_virtual_devices(rig: Rig) -> None:
    """Create, fault, flash and read a virtual device through the client."""
    console = ConsoleClient(rig.base_url, rig.session)
    created = await console.put_virtual_device(PRODUCT, "dev:1@x", "1.0")
    assert (created.device_name, created.version, created.state) == ("dev:1@x", "1.0", "running")
    faulted = await console.set_virtual_device_fault(PRODUCT, "dev:1@x", "no_reboot", reboot_delay_s=0)
    assert faulted.fault == "no_reboot"
    data = image(100)
    flashed = await console.flash_virtual_device(PRODUCT, "dev:1@x", data, md5=md5_hex(data), version="2.0")
    assert (flashed.state, flashed.pending_version) == ("rebooting", "2.0")
    assert (await console.get_virtual_device(PRODUCT, "dev:1@x")).state == "rebooting"
    with pytest.raises(ConsoleError) as caught:
        await console.get_virtual_device(PRODUCT, "nobody")
    assert caught.value.status == 404
    assert caught.value.message == "no such virtual device"


async def test_error_carries_status_and_message(rig: Rig) -> None:
    """Non-2xx: ConsoleError with the status and the console's own message."""
    console = ConsoleClient(rig.base_url, rig.session)
    with pytest.raises(ConsoleError) as caught:
        await console.set_faults({"throttle_bps": 0})
    assert caught.value.status == 400
    assert "throttle_bps must be at least 1" in caught.value.message
    with pytest.raises(ConsoleError) as caught:
        await console.upload_firmware("bad pid!", "1.0", b"x")
    assert caught.value.status == 400


async def test_unreachable_console(socket_enabled: None) -> None:
    """A console that does not answer: ConsoleError with status 0 naming the URL."""
    async with aiohttp.ClientSession() as session:
        console = ConsoleClient("http://127.0.0.1:9", session)
        with pytest.raises(ConsoleError) as caught:
            await console.stats()
    assert caught.value.status == 0
    assert "http://127.0.0.1:9" in caught.value.message


def test_secrets_stay_out_of_reprs() -> None:
    """Device secrets never appear in a repr."""
    credentials = DeviceCredentials("P1", "d1", "c2VjcmV0")
    assert "c2VjcmV0" not in repr(credentials)
    assert credentials.key == "P1/d1"


def test_parsing_tolerates_both_task_shapes() -> None:
    """Device status with a nested task or flat task fields; task devices as an object or a list."""
    nested = DeviceStatus.from_json(
        {
            "product_id": "P1",
            "device_name": "d1",
            "online": True,
            "version": "1.0",
            "gateway": "G1/gw",
            "task": {"task_id": "7", "state": "downloading", "percent": "37"},
        }
    )
    flat = DeviceStatus.from_json(
        {
            "product_id": "P1",
            "device_name": "d1",
            "online": True,
            "reported_version": "1.0",
            "bound_gateway": "G1/gw",
            "task_state": "downloading",
            "percent": 37,
            "task_id": "7",
        }
    )
    assert nested == flat
    assert nested.task is not None
    assert nested.task.percent == 37
    as_list = TaskStatus.from_json(
        "7", {"devices": [{"product_id": "P1", "device_name": "d1", "state": "done", "percent": 100}]}
    )
    as_map = TaskStatus.from_json("7", {"devices": {"P1/d1": {"state": "done", "percent": "100"}}})
    assert as_list == as_map
