"""The seed scenario end to end: a gateway, three lights and an air conditioner, V100R0001 pushed to the lights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually

from .engine_rig import AIRCON, GATEWAY, LIGHTS, running_gateway, seed_cloud

FIRMWARE = bytes(range(256)) * 400  # 102,400 bytes


def _ota_reports(messages: list[Any], device_key: str) -> list[dict[str, Any]]:
    pid, dn = device_key.split("/")
    return [m.payload for m in messages if m.direction == "in" and m.topic == f"$ota/report/{pid}/{dn}"]


async def test_seed_scenario(emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """Three lights go 0.1 → V100R0001 with one download, exact reports, and the console shows done."""
    cloud = await seed_cloud(emulator, http)
    console = cloud.console
    async with running_gateway(cloud, tmp_path) as gateway:
        engine = gateway.engine
        for device in [*LIGHTS, AIRCON]:
            status = await console.get_device(device.product_id, device.device_name)
            assert status.online, device
            assert status.version == "0.1"
            assert status.gateway == GATEWAY.key

        info = await console.upload_firmware(LIGHTS[0].product_id, "V100R0001", FIRMWARE)
        task_id = await console.create_task(LIGHTS[0].product_id, "V100R0001", "all", from_versions=["0.1"])

        async def all_done() -> bool:
            task = await console.get_task(task_id)
            versions = [(await console.get_device(d.product_id, d.device_name)).version for d in LIGHTS]
            # `done` lands first; the report of the new running version follows it.
            return all(p.state == "done" for p in task.devices.values()) and set(versions) == {"V100R0001"}

        await eventually(all_done, within=20)
        task = await console.get_task(task_id)
        assert sorted(task.devices) == sorted(d.key for d in LIGHTS)
        for light in LIGHTS:
            status = await console.get_device(light.product_id, light.device_name)
            assert status.version == "V100R0001"
            assert engine.ota.snapshot(light).installed_version == "V100R0001"
            assert engine.ota.snapshot(light).state is JobState.DONE
            virtual = await console.get_virtual_device(light.product_id, light.device_name)
            assert virtual.version == "V100R0001"
            assert gateway.states(light)[-5:] == [
                JobState.QUEUED,
                JobState.DOWNLOADING,
                JobState.VERIFYING,
                JobState.FLASHING,
                JobState.DONE,
            ] or gateway.states(light)[-4:] == [
                JobState.QUEUED,
                JobState.VERIFYING,
                JobState.FLASHING,
                JobState.DONE,
            ]

            reports = _ota_reports(await console.messages(light.key), light.key)
            assert reports[0] == {"type": "report_version", "report": {"version": "0.1"}}
            progress = [r["report"]["progress"] for r in reports if r["type"] == "report_progress"]
            assert all(
                r["report"]["version"] == "V100R0001" for r in reports if r["type"] == "report_progress"
            )
            states = [p["state"] for p in progress]
            downloading = [p for p in progress if p["state"] == "downloading"]
            assert downloading, "no downloading report"
            assert all(
                isinstance(p["percent"], str) and isinstance(p["result_code"], str) for p in downloading
            )
            assert downloading[0]["percent"] == "0"  # a fresh start says so
            assert downloading[-1]["percent"] == "100"
            assert states[len(downloading) :] == ["burning", "done"]
            assert all(p["result_code"] == "0" for p in progress)
            assert reports[-1] == {"type": "report_version", "report": {"version": "V100R0001"}}

        # The air conditioner is another product: untouched.
        assert engine.ota.snapshot(AIRCON).state is JobState.IDLE
        assert (await console.get_device(AIRCON.product_id, AIRCON.device_name)).version == "0.1"

        # One download served the three lights.
        stats = await console.stats()
        counters = stats.firmware[f"{LIGHTS[0].product_id}/V100R0001"]
        assert counters.bytes == info.size
        assert counters.requests == 1
        assert await console.violations() == []
        # No job needs the image any more: the cache is empty.
        assert [p.name for p in (tmp_path / "cache").glob("*") if p.is_file()] == []
