"""OTA job edges against the emulator: installs that cannot start, pushes during a flash, removal mid-job."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    FailureReason,
    FlashError,
    InvalidFirmwareError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually

from .engine_rig import LIGHTS, Cloud, Gateway, running_gateway, seed_cloud

IMAGE = bytes(range(256)) * 64
LIGHT = LIGHTS[0]
OTA_LOGGER = "custom_components.tencent_iot_gateway.engine.ota.jobs"


async def _push(cloud: Cloud, version: str) -> str:
    await cloud.console.upload_firmware(LIGHT.product_id, version, IMAGE)
    return await cloud.console.create_task(LIGHT.product_id, version, "list", devices=[LIGHT.device_name])


async def _reach(gateway: Gateway, state: JobState, version: str | None = None) -> None:
    async def reached() -> bool:
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        target = snapshot.target.version if snapshot.target is not None else None
        return snapshot.state is state and version in (None, target)

    await eventually(reached, within=10)


async def test_install_refuses_what_cannot_start(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Nothing pending, an unknown device, or no flasher: a clear error each time, and the state is unchanged."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path, flasher_for=lambda _d: None, auto_install=False) as gateway:
        ota = gateway.engine.ota
        with pytest.raises(InvalidFirmwareError, match="no firmware update is pending") as failure:
            await ota.install(LIGHT)
        assert failure.value.failure.reason is FailureReason.NO_UPDATE_PENDING
        with pytest.raises(InvalidFirmwareError, match="not a sub-device of this gateway") as failure:
            await ota.install(DeviceId(LIGHT.product_id, "ghost"))
        assert failure.value.failure.reason is FailureReason.NOT_A_SUB_DEVICE

        await _push(cloud, "V2")
        await _reach(gateway, JobState.AVAILABLE, "V2")
        with pytest.raises(FlashError, match="the sub-device has no flasher") as no_flasher:
            await ota.install(LIGHT)
        assert no_flasher.value.failure.reason is FailureReason.NO_FLASHER
        assert ota.snapshot(LIGHT).state is JobState.AVAILABLE
        assert ota.snapshot(LIGHT).installed_version == "0.1"


async def test_push_during_a_flash_waits_and_removal_cancels_the_job(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new version pushed while flashing does not interrupt the flash; removing the device ends the job."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_virtual_device_fault(LIGHT.product_id, LIGHT.device_name, "hang")
    async with running_gateway(cloud, tmp_path) as gateway:
        await _push(cloud, "V2")
        await _reach(gateway, JobState.FLASHING, "V2")

        with caplog.at_level(logging.WARNING, logger=OTA_LOGGER):
            await _push(cloud, "V3")

            async def warned() -> bool:
                return "is flashing V2; the push of V3 waits for the next report" in caplog.text

            await eventually(warned)
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        assert snapshot.state is JobState.FLASHING
        assert snapshot.target is not None
        assert snapshot.target.version == "V2"

        await gateway.engine.remove_sub_device(LIGHT)
        assert LIGHT not in [sub.device for sub in gateway.engine.sub_devices]
        with pytest.raises(InvalidFirmwareError, match="not a sub-device"):
            gateway.engine.ota.snapshot(LIGHT)
        device = await cloud.console.get_virtual_device(LIGHT.product_id, LIGHT.device_name)
        assert device.version == "0.1"


async def test_push_of_the_running_version_changes_nothing(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cloud offers the version the device already runs: nothing is downloaded or installed."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        with caplog.at_level(logging.INFO, logger=OTA_LOGGER):
            await _push(cloud, "0.1")

            async def noticed() -> bool:
                return "LIGHTPID01/light1 already runs 0.1; nothing to install" in caplog.text

            await eventually(noticed)
        assert gateway.engine.ota.snapshot(LIGHT).state is JobState.IDLE
        assert gateway.states(LIGHT) == [JobState.IDLE]
        stats = await cloud.console.stats()
        assert all(counters.requests == 0 for counters in stats.firmware.values())
