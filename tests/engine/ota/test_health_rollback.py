"""Health checks and rollback against the emulator: an unhealthy device after a flash is reported -5, never
done, and gets its last good image back; the virtual device ends on the old version, the cloud hears it."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from custom_components.tencent_iot_gateway.engine.errors import FailureReason
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.health_check import HealthCheck
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState, OtaSettings
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import LIGHTS, Cloud, running_gateway, seed_cloud

PID = LIGHTS[0].product_id
LIGHT = LIGHTS[0]
FAST = OtaSettings(report_interval_s=0.1, keepalive_interval_s=0.3)
GOOD = bytes(range(256)) * 16
BAD = bytes(reversed(range(256))) * 16


async def _task_end(cloud: Cloud, task_id: str) -> tuple[str, int | None, str | None]:
    async def probe() -> tuple[str, int | None, str | None] | None:
        device = (await cloud.console.get_task(task_id)).devices[LIGHT.key]
        if device.state in {"done", "fail", "timeout"}:
            return device.state, device.result_code, device.result_msg
        return None

    return await eventually(probe, within=15.0)


async def _cloud_version(cloud: Cloud, version: str) -> None:
    async def probe() -> bool:
        return (await cloud.console.get_device(LIGHT.product_id, LIGHT.device_name)).version == version

    await eventually(probe)


async def test_a_failing_health_check_reports_fail_and_rolls_back(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """V2 installs healthy (its image is kept); V3 flashes but its check fails: -5 "health check failed: ...;
    rolled back to V2", the virtual device runs V2 again and the cloud's last report_version is V2. The kept
    image goes with the device."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", GOOD)
    await cloud.console.upload_firmware(PID, "V3", BAD)
    checked: list[str] = []

    async def entity_available(device: DeviceId, firmware: FirmwareSpec) -> str | None:
        checked.append(firmware.version)
        return "lamp stays unavailable" if firmware.version == "V3" else None

    health = HealthCheck(
        entity_available, read_version=True, timeout_s=0.3, poll_interval_s=0.05, rollback=True
    )
    async with running_gateway(
        cloud,
        tmp_path,
        settings=FAST,
        sub_devices=[SubDevice(LIGHT, "0.1")],
        health_for=lambda _device: health,
    ) as gateway:
        first = await cloud.console.create_task(PID, "V2", "list", devices=[LIGHT.device_name])
        assert await _task_end(cloud, first) == ("done", 0, "")
        assert "V2" in checked
        await _cloud_version(cloud, "V2")

        second = await cloud.console.create_task(PID, "V3", "list", devices=[LIGHT.device_name])
        state, code, message = await _task_end(cloud, second)
        assert (state, code) == ("fail", -5)
        assert message == "the sub-device was not healthy after the flash and was rolled back to V2"
        await _cloud_version(cloud, "V2")
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        assert snapshot.state is JobState.FAILED
        assert snapshot.failure is not None
        assert snapshot.failure.reason is FailureReason.HEALTH_ROLLED_BACK
        assert snapshot.failure.placeholders["actual"] == "V2"
        assert snapshot.installed_version == "V2"
        kept = tmp_path / "rollback" / "LIGHTPID01__light1.bin"
        assert kept.read_bytes() == GOOD
        await gateway.engine.remove_sub_device(LIGHT)
        assert not kept.exists()  # deleted with the device
    virtual = await cloud.console.get_virtual_device(LIGHT.product_id, LIGHT.device_name)
    assert virtual.version == "V2"
    v3_snapshots = [s for s in gateway.snapshots(LIGHT) if s.target is not None and s.target.version == "V3"]
    assert JobState.DONE not in {s.state for s in v3_snapshots}  # never done before the check passes


async def test_without_an_earlier_image_the_device_keeps_the_new_one_and_fails(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Unhealthy with no image kept yet: -5 saying so; the device runs V2, which the cloud hears."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", GOOD)

    async def never(_device: DeviceId, _firmware: FirmwareSpec) -> str | None:
        return "no heartbeat"

    health = HealthCheck(never, timeout_s=0.2, poll_interval_s=0.05, rollback=True)
    async with running_gateway(
        cloud, tmp_path, settings=FAST, sub_devices=[SubDevice(LIGHT, "0.1")], health_for=lambda _d: health
    ) as gateway:
        task = await cloud.console.create_task(PID, "V2", "list", devices=[LIGHT.device_name])
        assert await _task_end(cloud, task) == (
            "fail",
            -5,
            "the sub-device was not healthy after the flash, and no earlier image was kept to roll back to",
        )
        await _cloud_version(cloud, "V2")
        assert gateway.engine.ota.snapshot(LIGHT).installed_version == "V2"
    assert not (tmp_path / "rollback" / "LIGHTPID01__light1.bin").exists()
